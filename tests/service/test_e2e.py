"""End to end: the real server (`python -m service`) as a subprocess on a free port, driven
through service/client.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from model.predictor import Predictor
from service.client import NO_RETRY, AsyncSentimentClient, SentimentClient, ServiceError
from tests.conftest import synthetic_reviews
from tests.metrics_text import samples, scraped, total
from tests.service.test_routes import ODD_TEXTS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

REPO = Path(__file__).resolve().parents[2]
# httpx's connection pool slows down badly with hundreds of requests in one pool, so the load
# is spread over several clients (each one a small pool).
SHARDS = 16


@asynccontextmanager
async def clients(url: str, **options: Any) -> AsyncIterator[list[AsyncSentimentClient]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(AsyncSentimentClient(url, **options))
            for _ in range(SHARDS)
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    checkpoint: Path, log: Path, module: str = "service", **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    environment = {
        **os.environ,
        "MODEL_DIR": str(checkpoint),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        # To the tiny checkpoint (some 30 words) most texts are unreadable: score them anyway.
        "UNSUPPORTED_TEXT": "score",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO, env=environment, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with SentimentClient(url) as client:
            for _ in range(120):
                assert process.poll() is None, log.read_text()[-2000:]
                try:
                    client.wait_until_ready(timeout=0.5)
                    break
                except TimeoutError:
                    pass
            else:
                raise TimeoutError(f"server not ready: {log.read_text()[-2000:]}")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def accepted_predictions(url: str) -> float:
    """/predict requests answered 200 or still in flight (the /metrics request excluded)."""
    async with httpx.AsyncClient() as probe:
        text = (await probe.get(f"{url}/metrics")).text
    values = samples(text)
    answered = total(values, "sentiment_http_requests_total", method="POST", route="/predict", status="200")
    return answered + total(values, "sentiment_http_requests_in_flight") - 1


def assert_close(prediction: object, row: list[float], labels: list[str]) -> None:
    probabilities = prediction.probabilities  # type: ignore[attr-defined]
    for label, p in zip(labels, row, strict=True):
        assert abs(probabilities[label] - p) <= 1e-5


async def test_concurrent_load_matches_offline_scoring(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    texts = [t for t, _ in synthetic_reviews(250, seed=11)] + ODD_TEXTS
    offline = Predictor.load(tiny_checkpoint_dir)
    expected = offline.predict_texts(texts).tolist()
    with server(tiny_checkpoint_dir, tmp_path / "server.log", WORKERS="2") as (process, url):
        async with clients(url) as pool:
            predictions = await asyncio.gather(
                *(pool[i % SHARDS].predict(t) for i, t in enumerate(texts))
            )
            batch = await pool[0].predict_many(texts[:50])
        calls = scraped(url, "sentiment_batch_size_count")
        answered = scraped(
            url, "sentiment_http_requests_total", method="POST", route="/predict", status="200"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    for prediction, row in zip(predictions + batch, expected + expected[:50], strict=True):
        assert_close(prediction, row, offline.labels)
    assert 0 < calls < len(texts)  # they really were batched
    assert answered == len(texts) + 1  # counted once each, whichever worker answered


@pytest.mark.parametrize(("drain_delay", "workers"), [("0", "1"), ("0", "2"), ("0.5", "2")])
async def test_sigterm_under_load_loses_no_accepted_request(
    tiny_checkpoint_dir: Path, tmp_path: Path, drain_delay: str, workers: str
) -> None:
    texts = [t for t, _ in synthetic_reviews(200, seed=12)]
    offline = Predictor.load(tiny_checkpoint_dir)
    expected = offline.predict_texts(texts).tolist()
    slow = {
        "SLOW_BATCH_S": "0.05",
        "MAX_BATCH_SIZE": "4",
        "DRAIN_DELAY_S": drain_delay,
        "WORKERS": workers,
    }
    log = tmp_path / "server.log"
    with server(tiny_checkpoint_dir, log, "tests.service.patched_server", **slow) as (process, url):
        async with clients(url, retry=NO_RETRY, timeout=30) as pool:
            tasks = [asyncio.create_task(pool[i % SHARDS].predict(t)) for i, t in enumerate(texts)]
            deadline = time.monotonic() + 20
            # Wait until the server has accepted all 200 (answered or in flight), then
            # signal while most are still queued: none may be lost.
            while (accepted := await accepted_predictions(url)) < len(texts):
                assert time.monotonic() < deadline, f"only {accepted} requests accepted"
                await asyncio.sleep(0.01)
            assert sum(task.done() for task in tasks) < len(texts) // 2
            process.send_signal(signal.SIGTERM)
            if float(drain_delay) > 0:  # still listening for a while: probes see "draining"
                async with httpx.AsyncClient() as probe:
                    # Until the signal is handled (however late on a busy machine) it is 200;
                    # then 503 "draining" for drain_delay, never a refused connection first.
                    while (health := await probe.get(f"{url}/health")).status_code == 200:
                        assert time.monotonic() < deadline, "SIGTERM not acted on"
                        await asyncio.sleep(0.01)
                assert health.status_code == 503 and health.json()["status"] == "draining"
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        code = process.wait(30)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert not failures, failures[:3]
    for prediction, row in zip(outcomes, expected, strict=True):
        assert_close(prediction, row, offline.labels)
    assert code == 0, log.read_text()[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health/live")


async def test_overload_sheds_with_429_within_the_deadline(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    request_timeout_s = 4.0
    env = {
        "SLOW_BATCH_S": "0.05",
        "MAX_BATCH_SIZE": "4",
        "MAX_QUEUE": "16",
        "MAX_BATCH": "4",
        "REQUEST_TIMEOUT_S": str(request_timeout_s),
        "BODY_TIMEOUT_S": "1",
    }
    with server(
        tiny_checkpoint_dir, tmp_path / "server.log", "tests.service.patched_server", **env
    ) as (_, url):
        async with clients(url, retry=NO_RETRY, timeout=10) as pool:

            async def one(i: int) -> tuple[int, float]:
                started = time.monotonic()
                try:
                    await pool[i % SHARDS].predict(f"review {i}")
                    status = 200
                except ServiceError as exc:
                    status = exc.status
                return status, time.monotonic() - started

            results = await asyncio.gather(*(one(i) for i in range(200)))
        alive = httpx.get(f"{url}/health")
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 429, 504}
    assert statuses.count(429) > 100 and statuses.count(200) >= 16
    # Every answer by the deadline (plus a busy machine's scheduling delay), and the refusals
    # before it: shed at admission, not held until the deadline.
    assert max(seconds for _, seconds in results) < request_timeout_s + 3.0
    assert max(seconds for status, seconds in results if status == 429) < request_timeout_s
    assert alive.status_code == 200


def run_main(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_setting_exits_before_listening(tmp_path: Path, tiny_checkpoint_dir: Path) -> None:
    result = run_main(tmp_path, MODEL_DIR=str(tiny_checkpoint_dir), MAX_BATCH_SIZE="lots")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAX_BATCH_SIZE" in lines[0], result.stderr


def test_bad_checkpoint_exits_before_listening(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    result = run_main(tmp_path, MODEL_DIR=str(broken), LOG_FORMAT="text")
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "manifest.json" in lines[0], result.stderr
    assert "Uvicorn running" not in result.stderr


def test_failed_warm_up_exits_instead_of_never_becoming_ready(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    environment = {
        **os.environ,
        "MODEL_DIR": str(tiny_checkpoint_dir),
        "PORT": str(free_port()),
        "BROKEN_MODEL": "1",
        "LOG_FORMAT": "text",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.service.patched_server"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4, result.stderr[-2000:]
    assert "start-up failed" in result.stderr
