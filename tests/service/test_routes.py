"""Contract tests of every endpoint's success path, in-process over ASGI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from model.checkpoint import load_checkpoint
from model.explain import explain_batch
from model.predictor import Predictor
from model.rnn import parameter_summary
from service.runtime.sentiment_model import load_explain_fn
from tests.conftest import synthetic_reviews
from tests.metrics_text import samples, total
from tests.service.conftest import running

pytestmark = pytest.mark.anyio

ODD_TEXTS = [
    "😀😀 🎬🍿 !!!",  # emoji only (the "!" are tokens)
    "فيلم رائع جدا، أحببته",  # right-to-left script
    "...,,,;;;--- ok",  # mostly punctuation, which is not read
    "zzqx vrrbl plonk",  # words no vocabulary holds
    "<br /><br />fine",  # the HTML breaks IMDB reviews use
    "a\tb\nc\r\nd\u200b",  # control whitespace and a zero-width space
]


@pytest.fixture(scope="module")
def offline(tiny_checkpoint_dir: Path) -> Predictor:
    return Predictor.load(tiny_checkpoint_dir)


def assert_matches_offline(predictions: list[dict], texts: list[str], offline: Predictor) -> None:
    expected = offline.predict_texts(texts).tolist()
    assert len(predictions) == len(texts)
    for prediction, row in zip(predictions, expected, strict=True):
        probabilities = prediction["probabilities"]
        assert list(probabilities) == offline.labels
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        for label, p in zip(offline.labels, row, strict=True):
            assert probabilities[label] == pytest.approx(p, abs=1e-5)
        best = max(probabilities, key=probabilities.__getitem__)
        assert prediction["label"] == best
        assert prediction["confidence"] == probabilities[best]
        assert "explanation" not in prediction


async def test_predict_one_text(app_factory: Callable[..., FastAPI], offline: Predictor) -> None:
    async with running(app_factory()) as client:
        response = await client.post("/predict", json={"text": "A wonderful, superb film."})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"model", "predictions"}
    assert body["model"] == offline.checkpoint.model_id
    assert_matches_offline(body["predictions"], ["A wonderful, superb film."], offline)


async def test_predict_many_texts_in_input_order(
    app_factory: Callable[..., FastAPI], offline: Predictor
) -> None:
    texts = [t for t, _ in synthetic_reviews(40, seed=3)]
    async with running(app_factory()) as client:
        response = await client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    assert_matches_offline(response.json()["predictions"], texts, offline)


async def test_concurrent_requests_are_batched_and_match_offline(
    app_factory: Callable[..., FastAPI], offline: Predictor
) -> None:
    texts = [t for t, _ in synthetic_reviews(120, seed=5)]
    # In-process, a request scored inline runs to its answer without yielding, so the others
    # would never overlap it; this test is about the queued path under real concurrency.
    app = app_factory(max_batch_size=16, max_wait_ms=20, inline_max_ms=0)
    async with running(app) as client:
        responses = await asyncio.gather(
            *(client.post("/predict", json={"text": t}) for t in texts)
        )
        metrics = (await client.get("/metrics")).text
    assert all(r.status_code == 200 for r in responses)
    assert_matches_offline([r.json()["predictions"][0] for r in responses], texts, offline)
    values = samples(metrics)
    calls = total(values, "sentiment_batch_size_count")
    assert 0 < calls < len(texts)  # concurrent requests shared model calls
    assert total(values, "sentiment_batch_size_bucket", le="16.0") == calls  # max size held


async def test_unusual_texts_are_scored(
    app_factory: Callable[..., FastAPI], offline: Predictor
) -> None:
    async with running(app_factory()) as client:
        response = await client.post("/predict", json={"texts": ODD_TEXTS})
    assert response.status_code == 200
    assert_matches_offline(response.json()["predictions"], ODD_TEXTS, offline)


async def test_text_of_100k_characters_is_scored_when_allowed(
    app_factory: Callable[..., FastAPI], offline: Predictor
) -> None:
    text = ("great film but boring plot " * 4000)[:100_000]
    async with running(app_factory(max_chars=100_000, max_body_bytes=1 << 20)) as client:
        response = await client.post("/predict", json={"text": text})
    assert response.status_code == 200
    assert_matches_offline(response.json()["predictions"], [text], offline)


async def test_request_id_is_echoed_or_generated(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory()) as client:
        given = await client.post(
            "/predict", json={"text": "ok"}, headers={"X-Request-ID": "abc-123"}
        )
        generated = await client.get("/health")
        unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_health_and_liveness(app_factory: Callable[..., FastAPI], offline: Predictor) -> None:
    async with running(app_factory()) as client:
        health = await client.get("/health")
        live = await client.get("/health/live")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model": offline.checkpoint.model_id}
    assert live.status_code == 200
    assert live.json() == {"status": "alive"}


async def test_model_metadata(
    app_factory: Callable[..., FastAPI], tiny_checkpoint_dir: Path
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint_dir)
    async with running(app_factory()) as client:
        response = await client.get("/model")
    assert response.status_code == 200
    info = response.json()
    assert info["id"] == ckpt.model_id
    assert info["sha256"] == ckpt.sha256
    assert info["architecture"] == ckpt.model.config.to_dict()
    assert info["parameters"] == sum(n for _, n in parameter_summary(ckpt.model))
    assert info["parameters_by_layer"] == dict(parameter_summary(ckpt.model))
    assert info["vocab_size"] == len(ckpt.pipeline.vocab)
    assert info["labels"] == ckpt.labels
    assert info["max_tokens"] == ckpt.pipeline.config.max_tokens
    assert info["metrics"] == ckpt.metrics
    assert info["temperature"] == pytest.approx(ckpt.temperature)
    assert info["backend"] == "onnx"


async def test_the_torch_backend_gives_the_same_answers(app_factory: Callable[..., FastAPI]) -> None:
    body = {"texts": ["a wonderful film", "boring and awful", "the plot " * 40]}
    rows = {}
    for backend in ("onnx", "torch"):
        async with running(app_factory(inference_backend=backend)) as client:
            assert (await client.get("/model")).json()["backend"] == backend
            response = await client.post("/predict", json=body)
        assert response.status_code == 200
        rows[backend] = [r["probabilities"]["positive"] for r in response.json()["predictions"]]
    assert rows["onnx"] == pytest.approx(rows["torch"], abs=1e-5)


async def test_metrics_exposition(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory()) as client:
        await client.post("/predict", json={"text": "fine"})
        await client.post("/predict", json={"text": ""})
        await client.get("/no-such-route")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "sentiment_http_requests_total",
        "sentiment_http_request_duration_seconds_bucket",
        "sentiment_queue_wait_seconds_bucket",
        "sentiment_inference_seconds_bucket",
        "sentiment_batch_size_bucket",
        "sentiment_queue_depth",
        "sentiment_model_info",
        "sentiment_ready 1.0",
    ):
        assert name in text, name
    requests = samples(text)
    for method, route, status in [("POST", "/predict", "200"), ("POST", "/predict", "422"),
                                  ("GET", "unmatched", "404")]:
        counted = total(requests, "sentiment_http_requests_total", method=method, route=route, status=status)
        assert counted == 1, (method, route, status)


async def test_openapi_and_docs(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory(max_chars=1234, max_batch=7)) as client:
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert set(schema["paths"]) >= {"/predict", "/health", "/health/live", "/model", "/metrics"}
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["one"]["value"] == {"text": body["examples"]["one"]["value"]["text"]}
    texts = body["schema"]["properties"]["texts"]
    assert texts["maxItems"] == 7 and texts["items"]["maxLength"] == 1234
    responses = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "429", "503", "504"} <= set(responses)
    assert "ErrorResponse" in schema["components"]["schemas"]


async def test_explanations(app_factory: Callable[..., FastAPI], offline: Predictor) -> None:
    assert load_explain_fn() is explain_batch  # the service uses the project's own module
    texts = ["A superb, wonderful film.", "Boring and awful."]
    async with running(app_factory()) as client:
        response = await client.post("/predict", json={"texts": texts, "explain": True})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert_matches_offline(
        [{k: v for k, v in p.items() if k != "explanation"} for p in predictions], texts, offline
    )
    for text, prediction in zip(texts, predictions, strict=True):
        tokens = prediction["explanation"]
        assert tokens and set(tokens[0]) == {"token", "start", "end", "score"}
        for token in tokens:
            assert text[token["start"] : token["end"]].lower() == token["token"]


async def test_draining_keeps_serving_but_fails_readiness(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory()
    async with running(app) as client:
        app.state.runtime.begin_drain()
        health = await client.get("/health")
        predict = await client.post("/predict", json={"text": "still here"})
        live = await client.get("/health/live")
    assert health.status_code == 503
    assert health.json()["status"] == "draining"
    assert health.json()["error"]["type"] == "not_ready"
    assert predict.status_code == 200
    assert live.status_code == 200


async def test_health_and_metrics_answer_while_the_model_is_busy(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory(max_batch_size=2)
    async with running(app) as client:
        batcher = app.state.runtime.batcher
        batcher.config.inline_max_s = 0  # slow only after warming up (see test_errors)
        model_call = batcher.handler
        entered, release = threading.Event(), threading.Event()
        held = {"calls": 0}

        def busy(batch: list[list[int]]) -> list[list[float]]:
            held["calls"] += 1
            entered.set()
            release.wait(10)  # the inference thread is busy; the event loop must not be
            held["calls"] -= 1
            return model_call(batch)

        batcher.handler = busy
        load = [asyncio.create_task(client.post("/predict", json={"text": "x"})) for _ in range(8)]
        await asyncio.to_thread(entered.wait, 10)
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        # Answered while the model call was still held: they did not wait for it.
        answered_during_the_call = held["calls"] == 1
        release.set()
        responses = await asyncio.gather(*load)
    assert health.status_code == 200 and metrics.status_code == 200
    assert answered_during_the_call
    assert all(r.status_code == 200 for r in responses)


async def test_a_three_class_checkpoint_serves_every_label(
    app_factory: Callable[..., FastAPI], tmp_path: Path
) -> None:
    """The service serves whatever label set a checkpoint declares (the shipped model has
    negative/neutral/positive; a binary checkpoint, as in every other test here, still serves)."""
    from tests.conftest import build_checkpoint

    directory = tmp_path / "three"
    build_checkpoint(directory, labels=("negative", "neutral", "positive"))
    offline = Predictor.load(directory)
    texts = ["A wonderful, superb film.", "The package arrived on Tuesday.", "Awful."]
    async with running(app_factory(model_dir=directory)) as client:
        scored = await client.post("/predict", json={"texts": texts, "explain": True})
        info = (await client.get("/model")).json()
        metrics = (await client.get("/metrics")).text
    assert scored.status_code == 200, scored.text
    predictions = scored.json()["predictions"]
    assert_matches_offline(
        [{k: v for k, v in p.items() if k != "explanation"} for p in predictions], texts, offline
    )
    assert all(p["explanation"] for p in predictions)
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert 'labels="negative,neutral,positive"' in metrics
