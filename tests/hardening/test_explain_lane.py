"""The explain lane of the REAL server, with explanations slowed in proportion to their tokens
(tests/service/patched_server.py): admission counts work in tokens and learns from every call,
so one slow request cannot lock the lane, and a refused explanation is refused before anything
is scored."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.metrics_text import scraped
from tests.service.conftest import assert_error
from tests.service.test_e2e import server

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 3.0
S_PER_TOKEN = 0.008  # the tiny checkpoint keeps 64 tokens: 8 long texts ~ 4.1 s, past the deadline
ENV = {
    "EXPLAIN_S_PER_TOKEN": str(S_PER_TOKEN),
    "REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    "BODY_TIMEOUT_S": "1",
    "MAX_EXPLAIN_TEXTS": "8",
}
LONG = " ".join(["good film bad plot"] * 30)  # 120 tokens, cut to the checkpoint's 64
SHORT = "good film"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("explain")
    calls = root / "calls.txt"
    calls.touch()
    with server(
        tiny_checkpoint_dir, root / "server.log", "tests.service.patched_server",
        EXPLAIN_CALLS=str(calls), **ENV,
    ) as (process, url):
        yield process, url, calls


def wait_for_call(calls: Path, line: str, timeout: float) -> None:
    """Until the explain lane has logged `line` ("start N" / "end N") since the test began."""
    end = time.monotonic() + timeout
    while line not in calls.read_text().splitlines():
        assert time.monotonic() < end, f"no {line!r} in {timeout} s: {calls.read_text()[-300:]}"
        time.sleep(0.02)


def explain(client: httpx.Client, texts: list[str]) -> httpx.Response:
    return client.post("/predict", json={"texts": texts, "explain": True})


def scored(url: str) -> float:
    """Reviews the plain model has scored so far."""
    return scraped(url, "sentiment_batch_size_sum")


def test_one_slow_request_does_not_lock_the_lane(live: Any) -> None:
    _, url, calls = live
    calls.write_text("")
    with httpx.Client(base_url=url, timeout=30) as client:
        # Past its deadline (504), but the lane finishes it and learns from it.
        slow = explain(client, [LONG] * 8)
        assert_error(slow, 504, "timeout")
        wait_for_call(calls, f"end {8 * 64}", timeout=8 * 64 * S_PER_TOKEN + 10)
        time.sleep(0.2)  # the lane's worker marks itself idle just after the call returns
        # Before: the lane learnt "8 reviews take 4 s" and refused every later 8-review request.
        for _ in range(5):
            response = explain(client, [SHORT] * 8)
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"][0]["explanation"]) == 2


def test_small_request_is_admitted_behind_a_large_one(live: Any) -> None:
    _, url, calls = live
    with httpx.Client(base_url=url, timeout=30) as client:
        explain(client, [LONG] * 2)  # the lane has seen long texts
        calls.write_text("")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            large = pool.submit(explain, client, [LONG] * 4)  # ~2 s of the 3 s deadline
            wait_for_call(calls, f"start {4 * 64}", timeout=10)  # the lane is busy with it
            # 16 tokens fit in the second left; counted in reviews (8 behind 4), they would not.
            small = explain(client, [SHORT] * 8)
            assert small.status_code == 200, small.text
            assert large.result().status_code == 200


def test_refused_explanations_are_never_scored(live: Any) -> None:
    _, url, _ = live

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post("/predict", json={"texts": [LONG] * 4, "explain": True}) for _ in range(12))
            )
        return [response.status_code for response in responses]

    before = scored(url)
    statuses = asyncio.run(burst())
    accepted = sum(1 for status in statuses if status != 429)
    assert set(statuses) <= {200, 429, 504}, statuses
    assert statuses.count(429) >= 6, statuses  # ~2 s of work each, 3 s deadline: most refused
    assert scored(url) - before == 4 * accepted, statuses
