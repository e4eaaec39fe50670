"""The LitServe peer's API (bench/peers.py). A module of its own: LitServe starts its inference
worker with `spawn`, which pickles the API, so the class must be importable by name; and
litserve is an optional dependency, imported only when this peer runs.

No `from __future__ import annotations` here: LitServe reads decode_request's annotation at run
time to build its route (a string there makes it expect a query parameter)."""

from pathlib import Path
from typing import Any

import litserve as ls

from bench.standin import load_predictor
from model.predictor import prediction_row


class SentimentAPI(ls.LitAPI):  # type: ignore[misc]
    def __init__(self, model_dir: Path | None, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        self.predictor = load_predictor(self.model_dir)

    def decode_request(self, request: dict[str, Any]) -> list[int]:
        ids: list[int] = self.predictor.text_to_ids(request["text"])
        return ids

    def batch(self, inputs: list[list[int]]) -> list[list[int]]:
        return inputs

    def predict(self, batch: list[list[int]]) -> list[list[float]]:
        rows: list[list[float]] = self.predictor.predict_ids(batch).tolist()
        return rows

    def unbatch(self, output: list[list[float]]) -> list[list[float]]:
        return output

    def encode_response(self, output: list[float]) -> dict[str, Any]:
        return prediction_row(self.predictor.labels, output)
