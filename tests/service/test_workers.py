"""service/server/workers.py: how many workers, the shared readiness board, metrics across processes,
and the supervisor against real worker processes (replacement, orphan exit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from service.config import Settings, available_cpus
from service.server.workers import WorkerBoard
from tests.metrics_text import scraped
from tests.service.test_e2e import REPO, server

AFFINITY = len(os.sched_getaffinity(0))


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "100000 100000\n"}, 1),  # v2, one CPU
        ({"cpu.max": "150000 100000\n"}, 2),  # v2, 1.5 CPUs round up
        ({"cpu.max": "50000 100000\n"}, 1),  # v2, half a CPU is still one worker
        ({"cpu.max": "max 100000\n"}, None),  # v2, no quota
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1, none
        ({}, None),  # no cgroup files at all
    ],
)
def test_workers_follow_the_cpu_quota_and_affinity(
    tmp_path: Path, files: dict[str, str], quota: int | None
) -> None:
    expected = AFFINITY if quota is None else min(AFFINITY, quota)
    assert available_cpus(cgroup(tmp_path, files)) == expected


def test_workers_default_is_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERS", raising=False)
    assert Settings().workers == available_cpus()
    monkeypatch.setenv("WORKERS", "3")
    assert Settings().workers == 3
    monkeypatch.setenv("WORKERS", "0")
    with pytest.raises(ValueError, match="workers"):
        Settings()


def test_board_is_ready_only_when_every_worker_is() -> None:
    board = WorkerBoard(2)
    first, second = board.slot(0), board.slot(1)
    assert not first.all_ready()
    first.report("ok")
    assert not second.all_ready() and first.describe() == "1 of 2 workers ready"
    second.report("ok")
    assert first.all_ready() and second.all_ready()
    second.report("draining")
    assert not first.all_ready()


def test_board_is_shared_with_forked_children() -> None:
    board = WorkerBoard(2)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        board.set(1, "ok")
        os._exit(0)
    os.waitpid(pid, 0)
    board.set(0, "ok")
    assert board.ready() == 2


METRICS_IN_TWO_PROCESSES = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
    from service.runtime.metrics import Metrics
    children = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:
            metrics = Metrics()
            metrics.ready.set(1)
            for _ in range(3 + worker):  # 3 requests in one worker, 4 in the other
                metrics.observe_request("/predict", "POST", 200, 0.01)
            metrics.observe_call(8, 0.02, True)
            metrics.in_flight.inc()
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    sys.stdout.write(Metrics().render().decode())
    """
)


def test_metrics_from_two_workers_add_up() -> None:
    result = subprocess.run(
        [sys.executable, "-c", METRICS_IN_TWO_PROCESSES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines() if line[:1] != "#")
    requests = 'sentiment_http_requests_total{method="POST",route="/predict",status="200"}'
    assert float(lines[requests]) == 7
    assert float(lines['sentiment_http_request_duration_seconds_count{route="/predict"}']) == 7
    assert float(lines["sentiment_batch_size_sum"]) == 16
    assert float(lines["sentiment_http_requests_in_flight"]) == 2  # livesum of both
    # The reader's own (not ready) gauge counts too: ready is the minimum over live workers.
    assert float(lines["sentiment_ready"]) == 0


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def wait_for(condition: object, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_dead_worker_is_replaced_and_logged(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with server(tiny_checkpoint_dir, log, WORKERS="2", LOG_FORMAT="text") as (process, url):
        for _ in range(10):
            assert httpx.post(f"{url}/predict", json={"text": "fine"}).status_code == 200
        before = scraped(url, "sentiment_http_requests_total", method="POST", route="/predict", status="200")
        workers = children_of(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(set(children_of(process.pid)) - set(workers)) == 1)
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200)
        assert httpx.post(f"{url}/predict", json={"text": "fine"}).status_code == 200
        after = scraped(url, "sentiment_http_requests_total", method="POST", route="/predict", status="200")
        assert after == before + 1  # the dead worker's counts are kept
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert "died (signal SIGKILL); replacing it" in log.read_text()


@pytest.mark.slow
def test_workers_leave_when_the_supervisor_is_killed(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    with server(tiny_checkpoint_dir, tmp_path / "server.log", WORKERS="2") as (process, _):
        workers = children_of(process.pid)
        process.kill()
        process.wait(10)

        def gone() -> bool:
            return all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in workers)

        wait_for(gone, timeout=15)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True
