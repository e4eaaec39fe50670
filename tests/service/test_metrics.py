"""Prediction monitoring on /metrics: what the model answers (label, confidence, input length)
adds up to what the clients were told, in-process over ASGI."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from model.predictor import Predictor
from tests.conftest import synthetic_reviews
from tests.metrics_text import samples, total
from tests.service.conftest import running

pytestmark = pytest.mark.anyio




async def test_prediction_metrics_add_up_to_the_texts_scored(
    app_factory: Callable[..., FastAPI], tiny_checkpoint_dir: Path
) -> None:
    texts = [text for text, _ in synthetic_reviews(40, seed=5)]
    bodies: list[dict[str, object]] = [{"text": t} for t in texts[:10]]
    bodies += [{"texts": texts[i : i + 6]} for i in range(10, 34, 6)]
    bodies += [{"texts": texts[34:36], "explain": True}, {"text": texts[36], "explain": True}]
    refused = [{"text": ""}, {"texts": []}, {"text": texts[37], "explain": "yes"}]
    async with running(app_factory()) as client:
        answers = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies + refused))
        exposition = (await client.get("/metrics")).text
        model_id = (await client.get("/model")).json()["id"]
    scored = [p for r in answers if r.status_code == 200 for p in r.json()["predictions"]]
    assert [r.status_code for r in answers[len(bodies) :]] == [422, 422, 422]
    sent = [t for b in bodies for t in ([b["text"]] if "text" in b else b["texts"])]  # type: ignore[list-item]
    assert len(scored) == len(sent) == 37

    values = samples(exposition)
    by_label = Counter(p["label"] for p in scored)
    assert total(values, "sentiment_predictions_total") == len(scored)
    for label, count in by_label.items():
        assert total(values, "sentiment_predictions_total", model=model_id, label=label) == count
        confidences = [p["confidence"] for p in scored if p["label"] == label]
        assert total(values, "sentiment_prediction_confidence_count", label=label) == count
        assert total(values, "sentiment_prediction_confidence_sum", label=label) == pytest.approx(
            sum(confidences)
        )
        # Cumulative buckets: the +Inf bucket holds every answer, none is above 1.
        assert total(values, "sentiment_prediction_confidence_bucket", label=label, le="1.0") == count
    assert {dict(ls)["model"] for (n, ls) in values if n == "sentiment_predictions_total"} == {model_id}

    predictor = Predictor.load(tiny_checkpoint_dir)
    lengths = [len(predictor.text_to_ids(t)) for t in sent]
    assert total(values, "sentiment_input_tokens_count", model=model_id) == len(sent)
    assert total(values, "sentiment_input_tokens_sum", model=model_id) == sum(lengths)
    assert total(values, "sentiment_input_tokens_bucket", le="25.0") == sum(n <= 25 for n in lengths)


async def test_prediction_metrics_start_empty_and_skip_the_warm_up(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory()) as client:
        exposition = (await client.get("/metrics")).text
    values = samples(exposition)
    assert total(values, "sentiment_predictions_total") == 0
    assert total(values, "sentiment_input_tokens_count") == 0
    # Declared (HELP/TYPE) even before the first prediction, so dashboards find them.
    families = {f.name for f in text_string_to_metric_families(exposition)}
    assert {"sentiment_predictions", "sentiment_prediction_confidence", "sentiment_input_tokens"} <= families
