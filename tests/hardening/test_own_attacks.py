"""Round 3's own attacks (issue 18): what else a client could make expensive, each now bounded,
against the REAL server where it matters.

* Pipelining: httptools parses a whole read (up to 256 KB) at once and every pipelined request
  in it became a queued request object: 20 connections of minimal pipelined requests took
  +132 MB. More than MAX_PIPELINED queued on a connection now cuts it off.
* Validation: pydantic validates every item of a list before its length and builds every error
  before reporting: a 1 MB body of 100,000 unknown keys took 1.4 s of the event loop and 67 MB.
  Unknown keys and over-long lists are now refused before pydantic runs.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from pydantic import BaseModel

from service.app.request_body import validate
from service.errors import MAX_DETAILS, ApiError
from service.schemas import build_predict_request
from service.server.http_guard import MAX_PIPELINED
from tests.hardening.test_hostile import port_of
from tests.metrics_text import scraped
from tests.service.conftest import assert_error
from tests.service.test_e2e import server

ENV = {"WORKERS": "1", "LOG_FORMAT": "text", "LOG_LEVEL": "INFO"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("own") / "server.log"
    with server(tiny_checkpoint_dir, log, **ENV) as (process, url):
        yield process, url, log


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while piece := sock.recv(65536):
            data += piece
    except ConnectionResetError:
        pass  # aborted: what was sent before the reset may be lost
    return data


@pytest.mark.slow
def test_moderate_pipelining_is_served_in_order(live: Any) -> None:
    _, url, _ = live
    port = port_of(url)
    requests = b"".join(
        f"GET /health/live?n={i} HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipe-{i}\r\n\r\n".encode()
        for i in range(MAX_PIPELINED // 2)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(requests + b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(sock)
    ids = [line.split(b": ")[1] for line in data.split(b"\r\n") if line.lower().startswith(b"x-request-id")]
    assert ids[: MAX_PIPELINED // 2] == [f"pipe-{i}".encode() for i in range(MAX_PIPELINED // 2)]
    assert data.count(b"HTTP/1.1 200") == MAX_PIPELINED // 2 + 1


@pytest.mark.slow
def test_deep_pipelining_is_cut_off_before_it_costs_memory(live: Any) -> None:
    process, url, log = live
    port = port_of(url)
    worker = psutil.Process(process.pid)
    before_rss = worker.memory_info().rss
    one = b"GET /nothing HTTP/1.1\r\n\r\n"
    socks = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(one * (262_144 // len(one)))  # ~10,000 requests in one read
            socks.append(sock)
        for sock in socks:
            answers = read_until_closed(sock)  # cut off: closed, not left open
            assert answers.count(b"HTTP/1.1 404") <= MAX_PIPELINED + 1
    finally:
        for sock in socks:
            sock.close()
    # Was +132 MB; what is left is the allocator's slack, not 20 x 10,000 queued requests.
    assert worker.memory_info().rss - before_rss < 30 * 2**20
    refused = scraped(url, "sentiment_protocol_refusals_total", status="none", type="pipeline_too_deep")
    assert refused >= 20
    assert "pipelined on one connection" in log.read_text()
    assert httpx.get(f"{url}/health/live").status_code == 200


SHAPES = {
    "90,000 unknown keys": {**{f"k{i}": 1 for i in range(90_000)}, "text": "good"},  # < 1 MiB
    "200,000 texts": {"texts": ["a"] * 200_000},
    "100,000 nested texts": {"texts": [[[1]]] * 100_000},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_bad_shapes_are_refused_before_pydantic_runs(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_predict_request(20_000, 64, 8)

    def never(cls: type[BaseModel], data: Any) -> Any:
        raise AssertionError("pydantic ran on a body refused by its shape")

    monkeypatch.setattr(model, "model_validate", classmethod(never))
    with pytest.raises(ApiError) as refused:
        validate(model, SHAPES[shape])
    assert refused.value.status == 422
    assert refused.value.details is not None and len(refused.value.details) <= MAX_DETAILS


@pytest.mark.slow
def test_unknown_keys_get_a_short_422_quickly(live: Any) -> None:
    _, url, _ = live
    body = orjson.dumps(SHAPES["90,000 unknown keys"])
    started = time.monotonic()
    response = httpx.post(
        f"{url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    error = assert_error(response, 422, "validation_error")
    assert "(and 89999 more errors)" in error["message"]
    assert len(error["details"]) == MAX_DETAILS
    assert {d["type"] for d in error["details"]} == {"extra_forbidden"}
    # Was 1.4 s of the event loop on this machine; generous for a busy one.
    assert time.monotonic() - started < 1.5


def test_a_valid_body_still_validates() -> None:
    model = build_predict_request(20_000, 64, 8)
    assert validate(model, {"texts": ["a fine film"] * 64}).texts is not None
    with pytest.raises(ApiError) as refused:
        validate(model, {"texts": ["fine"] * 65})
    message = "List should have at most 64 items after validation, not 65"
    assert refused.value.details == [{"field": "texts", "message": message, "type": "too_long"}]
