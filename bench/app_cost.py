"""What the app adds to each POST /predict around the model: `python -m bench.app_cost`.

The real app (create_app: middleware, lean path, validation, runtime, batcher, metrics, access
log) serves one-review requests in-process on uvloop, called as uvicorn calls it but without
sockets, with a served model whose tokenizing and scoring cost nothing (`InstantModel`: the
shipped model's labels and answer shape, every text readable English). So the process CPU
time per request is what serving adds, free of the load generator and of the model's own
variance: at concurrency 1 (a lone client, scored on the event loop) and at 64 (requests
wait in the batcher, whose thread scores them in batches). Medians of alternating runs, µs.
With bench.protocol_cost (the HTTP protocol layer) it is the budget the offline ceiling is
held against: the service reaches 0.8 of the ceiling only if the two stay under a quarter of
what tokenizing and scoring a review cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import orjson
import uvloop

from model.language import MODEL_LANGUAGE, Reading
from model.predictor import prediction_row
from service.app.factory import create_app
from service.app.request_body import OPEN_CONNECTIONS
from service.config import Settings
from service.logs import configure_logging
from service.server.workers import multiprocess_metrics_dir

LABELS = ["negative", "neutral", "positive"]
TEXT = "The battery lasts two days and the screen is bright, but the speaker is tinny."
READABLE = Reading(MODEL_LANGUAGE, True, None, 0.0)


class InstantModel:
    """The shipped model's contract at no cost: decode, reading and scoring are constants."""

    model_id = "instant@0"

    def decode(self, text: str) -> list[int]:
        return [1] * 16

    def reading(self, payload: list[int]) -> Reading:
        return READABLE

    def size_of(self, payload: list[int]) -> int:
        return len(payload)

    def predict(self, batch: list[list[int]]) -> Sequence[list[float]]:
        return [[0.1, 0.2, 0.7]] * len(batch)

    def encode(self, output: list[float]) -> dict[str, Any]:
        return prediction_row(LABELS, output)

    def info(self, explanations: bool) -> dict[str, Any]:
        return {"id": self.model_id, "labels": LABELS, "explanations": explanations}

    def metric_labels(self) -> dict[str, str]:
        return {"id": self.model_id}


def _scope(body: bytes, concurrent: bool) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 2), "server": ("127.0.0.1", 1), "state": {},
        "headers": [
            (b"host", b"x"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    if concurrent:  # as the guarded protocol marks it: other clients share the event loop
        scope[OPEN_CONNECTIONS] = 64
    return scope


async def _request(app: Any, body: bytes, concurrent: bool, statuses: list[int]) -> None:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(_scope(body, concurrent), receive, send)


async def _cpu_us(app: Any, concurrency: int, requests: int) -> float:
    """Process CPU µs per request (every thread: the event loop, the batcher, the log writer)."""
    body = orjson.dumps({"text": TEXT})
    statuses: list[int] = []
    started = time.process_time()
    for _ in range(requests // concurrency):
        await asyncio.gather(
            *(_request(app, body, concurrency > 1, statuses) for _ in range(concurrency))
        )
    seconds = time.process_time() - started
    if statuses != [200] * len(statuses):  # a timing of refused requests would mean nothing
        raise RuntimeError(f"answers other than 200: {sorted(set(statuses))}")
    return 1e6 * seconds / len(statuses)


async def measure(requests: int, repeats: int, concurrencies: Sequence[int] = (1, 64)) -> dict[str, float]:
    """Median CPU µs per request at each concurrency, runs alternating."""
    app = create_app(Settings(), model=InstantModel())
    runs: dict[int, list[float]] = {c: [] for c in concurrencies}
    async with app.router.lifespan_context(app):
        await app.state.runtime.wait_started()
        for c in concurrencies:  # warm-up: the batcher learns its call cost
            await _cpu_us(app, c, c * 4)
        for _ in range(repeats):
            for c in concurrencies:
                runs[c].append(await _cpu_us(app, c, requests))
    return {f"c={c}": round(statistics.median(values), 1) for c, values in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6_400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # The service's metrics and log set-up (as under several workers), the lines thrown away.
    with (
        multiprocess_metrics_dir(),
        open(os.devnull, "w") as sink,
        contextlib.redirect_stderr(sink),
    ):
        writer = configure_logging("INFO", "json")  # its handler writes to `sink`
        try:
            result = uvloop.run(measure(args.requests, args.repeats))
        finally:
            writer.stop()
    print(f"CPU µs per request the app adds (median of {args.repeats}): {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
