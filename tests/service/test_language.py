"""Texts the model cannot read, through the HTTP app with the shipped model: each policy of
UNSUPPORTED_TEXT, a mixed batch (order kept, readable answers equal to scoring them alone and
to the answers without the feature), /metrics, the schema, the client and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from model import predict
from model.language import POLICIES, Reading
from service.client import SentimentClient
from service.config import Settings
from service.runtime.metrics import Metrics
from tests.metrics_text import samples, total
from tests.service.conftest import assert_error, running

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "review-sentiment"
READABLE = [
    "A moving, beautifully acted film. I loved every minute of it.",
    "👍👍",
    "5/5",
    "ok",
    "lmao this was so bad 😂 #fail",
]
UNREADABLE = {
    1: "Der Film war langweilig und viel zu lang.",
    3: "这个手机非常好用，我很喜欢",
    5: "asdkjh qwpoeiru zmxncb",
}


def mixed() -> list[str]:
    """READABLE with UNREADABLE's texts at their positions."""
    texts = list(READABLE)
    for at, text in sorted(UNREADABLE.items()):
        texts.insert(at, text)
    return texts


@pytest.fixture
def shipped_app(app_factory: Callable[..., FastAPI]) -> Callable[..., FastAPI]:
    """The app over the shipped model, under `policy` (the service's default unless named: the
    other service tests' fixture scores everything, for the tiny checkpoint's sake)."""

    def make(policy: str = Settings.model_fields["unsupported_text"].default) -> FastAPI:
        return app_factory(model_dir=SHIPPED, unsupported_text=policy)

    return make


async def answers(app: FastAPI, body: dict[str, Any]) -> httpx.Response:
    async with running(app) as client:
        return await client.post("/predict", json=body)


def test_the_default_policy_is_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSUPPORTED_TEXT", raising=False)
    assert Settings().unsupported_text == "flag"
    monkeypatch.setenv("UNSUPPORTED_TEXT", "REFUSE")
    assert Settings().unsupported_text == "refuse"
    monkeypatch.setenv("UNSUPPORTED_TEXT", "ignore")
    with pytest.raises(ValueError, match="unsupported_text"):
        Settings()
    # The setting's choices are model.language's policies, written out (no import at start).
    assert Settings.model_fields["unsupported_text"].annotation.__args__ == POLICIES  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_flag_withholds_the_label_and_keeps_the_batch(
    shipped_app: Callable[..., FastAPI],
) -> None:
    texts = mixed()
    app = shipped_app()  # the default policy
    async with running(app) as client:
        batch = (await client.post("/predict", json={"texts": texts})).json()["predictions"]
        alone = [
            (await client.post("/predict", json={"text": text})).json()["predictions"][0]
            for text in READABLE
        ]
        metrics = (await client.get("/metrics")).text
    assert len(batch) == len(texts)
    for at, prediction in enumerate(batch):
        if at in UNREADABLE:
            assert prediction["readable"] is False and prediction["reason"]
            assert prediction["label"] is None and prediction["confidence"] is None
            assert prediction["probabilities"] is None and "error" not in prediction
    assert [batch[at]["language"] for at in sorted(UNREADABLE)] == ["de", "zh", "und"]
    assert [batch[at]["reason"] for at in sorted(UNREADABLE)] == [
        "other_language", "other_language", "unknown_words"
    ]
    readable = [p for at, p in enumerate(batch) if at not in UNREADABLE]
    assert readable == alone  # in order, and exactly what scoring each alone answers
    assert all(p["readable"] is True and p["label"] for p in readable)
    counted = texts_read(metrics)
    assert counted[("de", "flagged")] == 1 and counted[("zh", "flagged")] == 1
    assert counted[("und", "flagged")] == 1
    assert counted[("en", "scored")] == 6  # the batch's 3 English texts and 3 of them alone
    assert counted[("und", "scored")] == 4  # "👍👍" and "5/5": signs, no words
    # Withheld labels are not counted as predictions (they would drift the label metrics).
    assert total(samples(metrics), "sentiment_predictions_total") == 2 * len(READABLE)


@pytest.mark.anyio
async def test_readable_answers_are_the_same_under_every_policy(
    shipped_app: Callable[..., FastAPI],
) -> None:
    """The contract: what a readable text gets does not depend on the feature. `score` answers
    every text as before the feature (plus language/readable); flag and refuse differ from it
    only in the unreadable items."""
    texts = mixed()
    got = {}
    for policy in POLICIES:
        response = await answers(shipped_app(policy), {"texts": texts})
        assert response.status_code == 200, response.text
        got[policy] = response.json()["predictions"]
    new_fields = {"language", "readable", "reason", "error"}
    for at in range(len(texts)):
        before = {k: v for k, v in got["score"][at].items() if k not in new_fields}
        assert set(before) == {"label", "confidence", "probabilities"}
        if at not in UNREADABLE:
            assert got["flag"][at] == got["refuse"][at] == got["score"][at]
        else:
            assert before["label"] is not None and got["score"][at]["readable"] is False


@pytest.mark.anyio
async def test_refuse_a_single_text_is_a_422_in_the_one_error_shape(
    shipped_app: Callable[..., FastAPI],
) -> None:
    app = shipped_app("refuse")
    async with running(app) as client:
        refused = await client.post("/predict", json={"text": UNREADABLE[1]})
        fine = await client.post("/predict", json={"text": READABLE[0]})
        metrics = (await client.get("/metrics")).text
    error = assert_error(refused, 422, "unsupported_text")
    assert "reads English only" in error["message"] and "(de)" in error["message"]
    assert error["details"] == [
        {"field": "text", "message": error["message"].removeprefix("text: "), "type": "other_language"}
    ]
    assert fine.status_code == 200 and fine.json()["predictions"][0]["label"]
    assert texts_read(metrics)[("de", "refused")] == 1


@pytest.mark.anyio
async def test_refuse_inside_a_batch_fails_no_other_text(shipped_app: Callable[..., FastAPI]) -> None:
    texts = [READABLE[0]] * 63 + [UNREADABLE[1]]  # one unreadable text in a full batch
    response = await answers(shipped_app("refuse"), {"texts": texts})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert all(p["label"] and p["readable"] for p in predictions[:63])
    last = predictions[63]
    assert last["label"] is None and last["readable"] is False
    assert last["error"]["type"] == "unsupported_text" and "(de)" in last["error"]["message"]


@pytest.mark.anyio
async def test_score_labels_an_unreadable_text_and_says_so(shipped_app: Callable[..., FastAPI]) -> None:
    response = await answers(shipped_app("score"), {"text": UNREADABLE[3]})
    [prediction] = response.json()["predictions"]
    assert prediction["label"] is not None and prediction["probabilities"]
    assert prediction["readable"] is False and prediction["language"] == "zh"


@pytest.mark.anyio
async def test_explain_of_an_unreadable_text_is_withheld_with_its_label(
    shipped_app: Callable[..., FastAPI],
) -> None:
    response = await answers(shipped_app(), {"texts": [READABLE[0], UNREADABLE[1]], "explain": True})
    first, second = response.json()["predictions"]
    assert first["explanation"] and "explanation" not in second and second["label"] is None


@pytest.mark.anyio
async def test_schema_documents_the_new_fields(shipped_app: Callable[..., FastAPI]) -> None:
    async with running(shipped_app()) as client:
        schema = (await client.get("/openapi.json")).json()
    prediction = schema["components"]["schemas"]["Prediction"]
    for name in ("language", "readable", "reason", "error"):
        assert name in prediction["properties"], name
    assert {"type": "null"} in prediction["properties"]["label"]["anyOf"]
    assert "unsupported_text" in json.dumps(schema["paths"]["/predict"]["post"]["responses"]["422"])
    assert set(prediction["required"]) == {"label", "confidence", "probabilities"}


def test_metrics_bound_the_languages() -> None:
    metrics = Metrics()
    readings = [Reading("sw", False, "other_language"), Reading("xx", False, "other_language"),
                Reading("de", False, "other_language"), Reading("en", True)]
    metrics.observe_readings(readings, "score")
    counted = texts_read(metrics.render().decode())
    assert counted == {("other", "scored_unreadable"): 2, ("de", "scored_unreadable"): 1,
                       ("en", "scored"): 1}


def test_client_reads_an_unreadable_answer() -> None:
    body = {
        "model": "m@1",
        "predictions": [
            {"label": "positive", "confidence": 0.9, "probabilities": {"negative": 0.1, "positive": 0.9},
             "language": "en", "readable": True},
            {"label": None, "confidence": None, "probabilities": None, "language": "de",
             "readable": False, "reason": "other_language",
             "error": {"type": "unsupported_text", "message": "The model reads English only"}},
        ],
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with SentimentClient("http://svc", transport=transport) as client:
        read, unread = client.predict_many(["a", "b"])
    assert read.scored and read.readable and read.language == "en" and read.error is None
    assert not unread.scored and not unread.readable and unread.label is None
    assert unread.confidence is None and unread.probabilities is None
    assert (unread.language, unread.reason, unread.error) == ("de", "other_language",
                                                              "The model reads English only")


def test_the_cli_marks_what_it_cannot_read(tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(mixed()) + "\n", encoding="utf-8")
    rows = {}
    for policy in ("flag", "score"):
        out = tmp_path / f"{policy}.jsonl"
        code = predict.main([str(reviews), "--checkpoint", str(SHIPPED), "--out", str(out),
                             "--unsupported-text", policy, "--no-progress"])
        assert code == 0
        rows[policy] = [json.loads(line) for line in out.read_text().splitlines()]
    for at, (flagged, scored) in enumerate(zip(rows["flag"], rows["score"], strict=True)):
        if at in UNREADABLE:
            assert flagged["readable"] is False and flagged["label"] is None
            assert scored["readable"] is False and scored["label"] is not None
        else:
            assert flagged == scored and flagged["readable"] is True and flagged["label"]
    assert rows["flag"][1]["language"] == "de"


def texts_read(metrics: str) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["language"], dict(labels)["outcome"]): value
        for (name, labels), value in samples(metrics).items()
        if name == "sentiment_texts_read_total"
    }
