"""`python -m tests.service.patched_server`: the real server (service.server.launch) with its model
call patched from the environment, for process-level tests:

    SLOW_BATCH_S=0.05   every model call first sleeps this long (to hold requests in flight)
    BROKEN_MODEL=1      every model call raises (so the warm-up fails)
    EXPLAIN_S_PER_TOKEN=0.004   every explanation call first sleeps this long per token
    HUGE_OPENAPI_BYTES=8000000  /openapi.json carries this much padding (one answer larger
                                than any socket buffers, for the write deadline)
    EXPLAIN_CALLS=path          each explanation call appends "start N" and "end N" lines (N
                                tokens), so a test can wait for a call instead of guessing
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from fastapi import FastAPI

from service.runtime.sentiment_model import Explainer, SentimentModel
from service.server import launch as entry

DELAY = float(os.environ.get("SLOW_BATCH_S", "0"))
BROKEN = os.environ.get("BROKEN_MODEL") == "1"
EXPLAIN_DELAY = float(os.environ.get("EXPLAIN_S_PER_TOKEN", "0"))
PADDING = int(os.environ.get("HUGE_OPENAPI_BYTES", "0"))
EXPLAIN_CALLS = os.environ.get("EXPLAIN_CALLS")
_predict = SentimentModel.predict
_explain = Explainer.explain
_openapi = FastAPI.openapi


def _patched_predict(self: SentimentModel, batch: list[list[int]]) -> list[list[float]]:
    if BROKEN:
        raise RuntimeError("model deliberately broken for a test")
    time.sleep(DELAY)
    return _predict(self, batch)


def _patched_explain(self: Explainer, items: list[tuple[str, int]]) -> list[list[dict[str, object]]]:
    tokens = sum(tokens for _, tokens in items)
    _note(f"start {tokens}")
    try:
        time.sleep(EXPLAIN_DELAY * tokens)
        return _explain(self, items)
    finally:
        _note(f"end {tokens}")


def _note(line: str) -> None:
    if EXPLAIN_CALLS:
        with open(EXPLAIN_CALLS, "a") as handle:
            handle.write(line + "\n")


def _padded_openapi(self: FastAPI) -> dict[str, Any]:
    schema = _openapi(self)
    schema["x-padding"] = "a" * PADDING
    return schema


SentimentModel.predict = _patched_predict  # type: ignore[method-assign]
if PADDING:
    FastAPI.openapi = _padded_openapi  # type: ignore[method-assign]
Explainer.explain = _patched_explain  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(entry.main())
