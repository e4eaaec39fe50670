"""Below the app, round 3 (issue 18, items 3 and 6), against the REAL server: the probes are
answered when idle connections hold the connection cap, a connection that never reads its
answers is dropped after WRITE_TIMEOUT_S, and every refusal the protocol layer writes (or a
silent close) is counted in /metrics and logged, a flood of them in a few lines."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.attacks import established, probes_at_the_cap, unread_answers
from tests.hardening.test_hostile import port_of, raw_exchange
from tests.metrics_text import scraped
from tests.service.test_e2e import server

pytestmark = pytest.mark.slow

MAX_CONNECTIONS = 12
WRITE_TIMEOUT_S = 1.0
ENV = {
    "WORKERS": "1",  # the cap is per process: one process holds every connection
    "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "BODY_TIMEOUT_S": "3",  # the idle connections stay while the probes are sent
    "WRITE_TIMEOUT_S": str(WRITE_TIMEOUT_S),
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("cap") / "server.log"
    with server(tiny_checkpoint_dir, log, **ENV) as (process, url):
        yield process, url, log


def refusals(url: str, status: str, kind: str) -> float:
    return scraped(url, "sentiment_protocol_refusals_total", status=status, type=kind)


def wait_for(condition: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.1)


def test_probes_are_answered_when_idle_connections_hold_the_cap(live: Any) -> None:
    _, url, _ = live
    before = refusals(url, "503", "too_many_connections")
    found = probes_at_the_cap(port_of(url), MAX_CONNECTIONS)
    for path in ("/health", "/health/live"):
        assert found[path]["status"] == 200, found
        assert found[path]["seconds"] < 1.0, found
        # Answered, but not kept: beyond the cap nothing stays open longer than its answer.
        assert found[path]["connection"] == "close", found
    assert found["/predict"]["status"] == 503, found  # everything else is still refused
    assert refusals(url, "503", "too_many_connections") == before + 1


def test_a_probe_over_the_cap_is_closed_after_its_answer(live: Any) -> None:
    _, url, _ = live
    port = port_of(url)
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=3) as probe:
            probe.sendall(f"HEAD /health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            answer = b""
            while piece := probe.recv(65536):  # until the server closes (a timeout fails)
                answer += piece
        head = answer.decode("latin-1").lower()
        assert head.startswith("http/1.1 200") and "connection: close" in head, head
    finally:
        for sock in held:
            sock.close()


def test_a_connection_that_never_reads_is_dropped_after_the_write_deadline(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    # One request whose answer (8 MB) outgrows every socket buffer, never read: no pipelining,
    # so the write deadline, not the pipelining limit, is what lets the connection go.
    log = tmp_path / "server.log"
    env = {**ENV, "HUGE_OPENAPI_BYTES": str(8_000_000)}
    with server(tiny_checkpoint_dir, log, "tests.service.patched_server", **env) as (process, url):
        port = port_of(url)
        before = refusals(url, "none", "write_timeout")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(f"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            started = time.monotonic()
            wait_for(lambda: established(process.pid, port) == 1, timeout=10)
            wait_for(lambda: established(process.pid, port) == 0, timeout=WRITE_TIMEOUT_S + 20)
            held_s = time.monotonic() - started
        finally:
            sock.close()
        assert held_s >= WRITE_TIMEOUT_S * 0.9  # the deadline, not anything sooner
        assert refusals(url, "none", "write_timeout") == before + 1
        assert "answers not read within 1s" in log.read_text()
        assert httpx.get(f"{url}/health/live").status_code == 200


def test_pipelining_without_reading_is_not_held(live: Any) -> None:
    # Whether the write deadline or the pipelining limit cuts these off depends on how fast the
    # server drains the bursts; that neither connection is held does not.
    process, url, _ = live
    found = unread_answers(process.pid, port_of(url), connections=2, limit_s=60)
    assert found["still_held"] == 0, found
    assert established(process.pid, port_of(url)) == 0


@pytest.mark.parametrize(
    ("raw", "status", "kind"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "400", "bad_request"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "431", "headers_too_large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "408", "request_timeout"),  # never finished
        (b"", "none", "idle_closed"),  # connects and says nothing
    ],
    ids=["malformed", "huge-header", "slow-header", "silent"],
)
def test_protocol_refusals_are_counted_and_logged(live: Any, raw: bytes, status: str, kind: str) -> None:
    _, url, log = live
    before = refusals(url, status, kind)
    raw_exchange(port_of(url), raw, deadline_s=6)
    wait_for(lambda: refusals(url, status, kind) == before + 1, timeout=10)
    lines = [line for line in log.read_text().splitlines() if "protocol refused" in line]
    assert any(f"type={kind}" in line for line in lines), lines[-5:]


def test_a_flood_of_refusals_is_counted_whole_and_logged_in_a_few_lines(live: Any) -> None:
    _, url, log = live
    before = refusals(url, "400", "bad_request")
    logged = len(re.findall(r"protocol refused.*type=bad_request", log.read_text()))
    for _ in range(50):
        raw_exchange(port_of(url), b"NOT HTTP AT ALL\r\n\r\n", deadline_s=5)
    wait_for(lambda: refusals(url, "400", "bad_request") == before + 50, timeout=10)
    # One line per kind every 10 s at most, each saying how many went unlogged; uvicorn's own
    # line per malformed request is dropped.
    text = log.read_text()
    assert len(re.findall(r"protocol refused.*type=bad_request", text)) - logged <= 2
    assert "uvicorn.error: Invalid HTTP request received" not in text
