"""REQUEST_TIMEOUT_S counts all the work of a request, tokenizing included (issue 18, item 4),
against the REAL server: many concurrent requests of ~1 MB of the text shape that costs the
tokenizer most, far more tokenizing than fits the deadline. Every answer comes by the deadline
plus a margin (the client's own upload and the event loop's turn, not the tokenizing), and
each late one is a 504 in the one error shape; the server then serves normally."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.attacks import EXPENSIVE, EXPENSIVE_TEXTS, Posted, expensive_body, post_all
from model.checkpoint import load_checkpoint
from service.runtime.sentiment_model import SentimentModel
from tests.hardening.test_overload import probe
from tests.service.conftest import assert_error
from tests.service.test_e2e import server

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 1.0
MARGIN_S = 2.0  # generous: a busy 2-core machine; before the fix the slowest took 4-8 s
CLIENTS = 16


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("deadline") / "server.log"
    env = {"WORKERS": "1", "REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S), "BODY_TIMEOUT_S": "1"}
    with server(tiny_checkpoint_dir, log, **env) as (process, url):
        yield process, url, log


def tokenizing_s(checkpoint: Path) -> float:
    """What tokenizing one request's texts costs here, now."""
    model = SentimentModel(load_checkpoint(checkpoint), "onnx")
    model.decode(EXPENSIVE)
    started = time.perf_counter()
    for _ in range(EXPENSIVE_TEXTS):
        model.decode(EXPENSIVE)
    return time.perf_counter() - started


async def flood(url: str) -> tuple[list[Posted], list[Any]]:
    probes: list[tuple[str, int, float]] = []
    end = time.monotonic() + REQUEST_TIMEOUT_S + MARGIN_S
    results, _ = await asyncio.gather(
        post_all(url, expensive_body(), CLIENTS), probe(url, end, probes, interval=0.2)
    )
    return results, probes


def test_the_deadline_counts_tokenizing(live: Any, tiny_checkpoint_dir: Path) -> None:
    _, url, _ = live
    # The premise: the requests together need several times the deadline to tokenize.
    assert CLIENTS * tokenizing_s(tiny_checkpoint_dir) > 2 * REQUEST_TIMEOUT_S
    results, probes = asyncio.run(flood(url))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429, 504}, statuses
    assert 504 in statuses, statuses  # the work did not fit: some answers are the deadline's
    slowest = max(seconds for _, seconds, _ in results)
    assert slowest < REQUEST_TIMEOUT_S + MARGIN_S, (slowest, statuses)
    for status, _, response in results:
        if status == 504:
            assert response is not None
            assert_error(response, 504, "timeout")
    assert all(status == 200 for _, status, _ in probes), probes
    # The tokenizing thread dropped the abandoned requests: a normal one is served at once.
    response = httpx.post(f"{url}/predict", json={"text": "a fine film"}, timeout=10)
    assert response.status_code == 200, response.text
