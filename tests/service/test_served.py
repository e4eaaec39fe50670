"""The served-model contract: create_app serves any `ServedModel` handed to it (no patching),
and readiness across workers through the shared board."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from service.app.factory import create_app
from service.app.request_body import OPEN_CONNECTIONS, lone_client
from service.config import Settings
from service.runtime.contract import Explainable, ServedModel
from service.server.workers import WorkerBoard
from tests.service.conftest import assert_error, running

pytestmark = pytest.mark.anyio


class ShoutingModel:
    """Scores a review by the share of its letters that are capitals."""

    model_id = "shouting@1"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def decode(self, text: str) -> str:
        return "".join(c for c in text if c.isalpha())

    def size_of(self, payload: str) -> int:
        return len(payload)

    def predict(self, batch: list[str]) -> Sequence[float]:
        self.batches.append(batch)
        return [sum(c.isupper() for c in p) / max(1, len(p)) for p in batch]

    def encode(self, output: float) -> dict[str, Any]:
        label = "loud" if output > 0.5 else "calm"
        return {
            "label": label,
            "confidence": max(output, 1 - output),
            "probabilities": {"calm": 1 - output, "loud": output},
        }

    def info(self, explanations: bool) -> dict[str, Any]:
        return {"id": self.model_id, "labels": ["calm", "loud"], "explanations": explanations}

    def metric_labels(self) -> dict[str, str]:
        return {"id": self.model_id}


def settings(**overrides: Any) -> Settings:
    return Settings(log_level="WARNING", **overrides)


def test_the_fake_satisfies_the_contract() -> None:
    assert isinstance(ShoutingModel(), ServedModel)
    assert not isinstance(ShoutingModel(), Explainable)


async def test_create_app_serves_an_injected_model() -> None:
    model = ShoutingModel()
    async with running(create_app(settings(), model=model)) as client:
        one = await client.post("/predict", json={"text": "WHAT a FILM"})
        many = await client.post("/predict", json={"texts": ["quiet", "LOUD!"]})
        info = await client.get("/model")
        explain = await client.post("/predict", json={"text": "x", "explain": True})
        metrics = (await client.get("/metrics")).text
    assert one.status_code == 200, one.text
    assert one.json()["model"] == "shouting@1"
    assert one.json()["predictions"][0]["label"] == "loud"
    assert [p["label"] for p in many.json()["predictions"]] == ["calm", "loud"]
    assert info.json() == {"id": "shouting@1", "labels": ["calm", "loud"], "explanations": False}
    assert_error(explain, 501, "not_implemented")
    assert 'sentiment_model_info{id="shouting@1"} 1.0' in metrics
    assert ["WHATaFILM"] in model.batches  # the warm-up ran too, through the same calls


async def test_health_waits_for_every_worker() -> None:
    board = WorkerBoard(2)
    app = create_app(settings(), model=ShoutingModel(), slot=board.slot(0))
    async with running(app, ready=False) as client:
        await app.state.runtime.wait_started()
        waiting = await client.get("/health")
        board.set(1, "ok")
        ready = await client.get("/health")
    assert_error(waiting, 503, "not_ready")
    assert waiting.json()["status"] == "loading"
    assert "1 of 2 workers ready" in waiting.json()["error"]["message"]
    assert ready.status_code == 200


class ThreadNotingModel(ShoutingModel):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def predict(self, batch: list[str]) -> Sequence[float]:
        self.threads.append(threading.get_ident())
        return super().predict(batch)


@pytest.mark.parametrize(("inline_max_ms", "on_the_loop"), [(50.0, True), (0.0, False)])
async def test_a_lone_review_is_scored_on_the_event_loop(inline_max_ms: float, on_the_loop: bool) -> None:
    model = ThreadNotingModel()
    async with running(create_app(settings(inline_max_ms=inline_max_ms), model=model)) as client:
        warm_up_calls = len(model.threads)  # start-up runs on the inference thread
        lone = await client.post("/predict", json={"text": "WHAT a FILM"})
        pair = await client.post("/predict", json={"texts": ["quiet", "LOUD"]})
        explained = await client.post("/predict", json={"text": "LOUD", "explain": True})
    assert lone.status_code == 200 and pair.status_code == 200 and explained.status_code == 501
    lone_thread, pair_thread = model.threads[warm_up_calls:]
    assert (lone_thread == threading.get_ident()) is on_the_loop
    assert pair_thread != threading.get_ident()  # two reviews always go to the inference thread


def test_a_lone_client_is_the_only_connection() -> None:
    assert lone_client({OPEN_CONNECTIONS: 1})
    assert not lone_client({OPEN_CONNECTIONS: 2})
    assert lone_client({})  # unknown (a test transport): nobody else is there
