"""POST /predict with "sentences": true: each sentence scored as if sent alone, offsets that
slice the text as sent, the whole of a long review, `mixed`, the limits in the one error
shape, and the default answer untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.predictor import Predictor, length_groups
from model.sentences import split_sentences
from service.app.factory import create_app
from service.config import Settings
from tests.service.conftest import assert_error, running
from tests.service.test_served import ShoutingModel

pytestmark = pytest.mark.anyio

ISSUE_EXAMPLE = (
    "The battery died after two days and support never answered. Shame, the screen is lovely."
)
# One-sided reviews of five sentences, written for this test, that the shipped model reads
# right sentence by sentence (docs/sentences.md shows one it does not).
ONE_SIDED = (
    "We stayed three nights and loved it. The room was spotless and the bed was very "
    "comfortable. Breakfast was fresh and generous. The staff were friendly and helpful. We "
    "will definitely come back.",
    "Terrible phone. The battery dies by noon. The screen cracked in a week. Support ignored "
    "my emails. Do not buy it.",
)
# Words the tiny checkpoint knows (tests/conftest.py), in sentences of every shape.
TINY_TEXTS = (
    "The movie was great. The plot was awful!! The ending was wonderful 😍 The actor was bad",
    "A film of the director.\n\nthe music was superb... The scene was boring",
    "Great.",
    "the story and the music",
)


@pytest.fixture
async def tiny(app_factory: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app_factory()) as client:
        yield client


def counted(metrics: str, name: str) -> float:
    """The sum of a counter's samples over all its labels."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name
    )


def sentences_of(response: httpx.Response) -> list[list[dict[str, Any]]]:
    assert response.status_code == 200, response.text
    return [p["sentences"] for p in response.json()["predictions"]]


async def test_each_sentence_is_scored_as_if_sent_alone(
    tiny: httpx.AsyncClient, tiny_checkpoint_dir: Any
) -> None:
    response = await tiny.post("/predict", json={"texts": list(TINY_TEXTS), "sentences": True})
    predictor = Predictor(load_checkpoint(tiny_checkpoint_dir))
    for text, sentences in zip(TINY_TEXTS, sentences_of(response), strict=True):
        spans = [(s["start"], s["end"]) for s in sentences]
        assert spans == split_sentences(text)
        alone = predictor.predict_texts([text[a:b] for a, b in spans]).tolist()
        for sentence, expected in zip(sentences, alone, strict=True):
            got = [sentence["probabilities"][label] for label in predictor.labels]
            assert got == pytest.approx(expected, abs=1e-5), (text, sentence)
            assert sentence["label"] == predictor.labels[expected.index(max(expected))]
            assert sentence["confidence"] == max(got)


async def test_sentences_never_change_the_answer_for_the_whole_text(tiny: httpx.AsyncClient) -> None:
    for body in ({"text": TINY_TEXTS[0]}, {"texts": list(TINY_TEXTS)}, {"text": "Great.", "explain": True}):
        plain = await tiny.post("/predict", json=body)
        off = await tiny.post("/predict", json={**body, "sentences": False})
        on = await tiny.post("/predict", json={**body, "sentences": True})
        # Asked for nothing new, the answer is the same bytes; asked, only two fields are added.
        assert off.content == plain.content
        for before, after in zip(plain.json()["predictions"], on.json()["predictions"], strict=True):
            assert set(before) == {"label", "confidence", "probabilities", "language", "readable"} | (
                {"explanation"} if body.get("explain") else set()
            )
            assert {k: v for k, v in after.items() if k not in ("sentences", "mixed")} == before


async def test_a_long_review_is_scored_whole(tiny: httpx.AsyncClient) -> None:
    # The tiny checkpoint keeps 64 tokens (head and tail); this review has about 400.
    middle = "The plot was awful and the actor was bad. "
    text = "The movie was great. " * 10 + middle * 8 + "The ending was wonderful. " * 10
    response = await tiny.post("/predict", json={"text": text, "sentences": True})
    (sentences,) = sentences_of(response)
    assert len(sentences) == 28
    assert [text[s["start"]:s["end"]] for s in sentences][10:18] == [middle.strip()] * 8
    plain = (await tiny.post("/predict", json={"text": text})).json()["predictions"][0]
    assert response.json()["predictions"][0]["probabilities"] == plain["probabilities"]


async def test_offsets_index_the_text_as_sent(tiny: httpx.AsyncClient) -> None:
    # Astral emoji, combining marks, CRLF, NBSP and break tags: Python str indices (code
    # points), not UTF-16 units or bytes.
    text = "Great 👍🏽 film.\r\nThe acte\u0301ur was bad!!\u00a0😍 <br /><br />The music was superb"
    (sentences,) = sentences_of(await tiny.post("/predict", json={"text": text, "sentences": True}))
    assert [text[s["start"]:s["end"]] for s in sentences] == [
        "Great 👍🏽 film.", "The acte\u0301ur was bad!!\u00a0😍", "The music was superb",
    ]


async def test_too_many_sentences_are_refused_before_any_is_scored(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory(max_sentences=5, max_queue=64)) as client:
        metrics_before = (await client.get("/metrics")).text
        one = await client.post("/predict", json={"text": "Bad! " * 6, "sentences": True})
        many = await client.post(
            "/predict", json={"texts": ["Good. Bad.", "Good. Bad.", "Good. Bad."], "sentences": True}
        )
        fits = await client.post("/predict", json={"text": "Bad! " * 5, "sentences": True})
        without = await client.post("/predict", json={"text": "Bad! " * 6})
        metrics_after = (await client.get("/metrics")).text
    error = assert_error(one, 422, "validation_error")
    assert error["details"] == [
        {"field": "text", "type": "too_many_sentences",
         "message": "more than 5 sentences in this request; at most 5 with sentences=true"}
    ]
    assert assert_error(many, 422, "validation_error")["details"][0]["field"] == "texts[2]"
    assert len(sentences_of(fits)[0]) == 5
    assert without.status_code == 200  # the limit is for sentences only
    # The refused requests scored nothing: only the five sentences of the one that fit count.
    assert counted(metrics_after, "sentiment_sentences_total") - counted(
        metrics_before, "sentiment_sentences_total"
    ) == 5
    assert counted(metrics_after, "sentiment_sentence_documents_total") == 1


async def test_a_queue_smaller_than_the_sentence_limit_lowers_it(
    app_factory: Callable[..., FastAPI],
) -> None:
    # Sentences are queue items: more than the queue holds could never be scored (not a 429).
    async with running(app_factory(max_queue=4, max_batch=4, max_sentences=256)) as client:
        refused = await client.post("/predict", json={"text": "Bad! " * 4, "sentences": True})
        fits = await client.post("/predict", json={"text": "Bad! " * 3, "sentences": True})
    assert "at most 3 with" in assert_error(refused, 422, "validation_error")["message"]
    assert fits.status_code == 200


async def test_the_largest_texts_of_tiny_sentences_are_refused_in_time(
    app_factory: Callable[..., FastAPI],
) -> None:
    # An attacker's request: as many texts as allowed, each MAX_CHARS of one-word sentences.
    texts = ["Bad! " * 4000] * 50  # 1 MB: the most the body limit lets through
    async with running(app_factory(max_chars=20_000)) as client:
        response = await client.post("/predict", json={"texts": texts, "sentences": True})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0] == {
        "field": "texts[0]", "type": "too_many_sentences",
        "message": "more than 256 sentences in this request; at most 256 with sentences=true",
    }


async def test_a_text_the_model_cannot_read_shows_no_sentences(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory(unsupported_text="flag")) as client:
        response = await client.post(
            "/predict", json={"texts": ["Der Film war wirklich sehr gut.", "Great."], "sentences": True}
        )
    unreadable, _ = response.json()["predictions"]
    assert unreadable["readable"] is False and unreadable["label"] is None
    assert "sentences" not in unreadable and "mixed" not in unreadable


async def test_explanations_combine_with_sentences(tiny: httpx.AsyncClient) -> None:
    response = await tiny.post(
        "/predict", json={"text": TINY_TEXTS[0], "explain": True, "sentences": True}
    )
    prediction = response.json()["predictions"][0]
    assert len(prediction["sentences"]) == 4
    ends = [s["end"] for s in prediction["sentences"]]
    # Every explained word lies inside one sentence.
    for word in prediction["explanation"]:
        assert any(s["start"] <= word["start"] and word["end"] <= s["end"] for s in prediction["sentences"])
    assert ends[-1] == len(TINY_TEXTS[0])


async def test_a_model_without_sentences_answers_501() -> None:
    async with running(create_app(Settings(log_level="WARNING"), model=ShoutingModel())) as client:
        response = await client.post("/predict", json={"text": "LOUD. quiet.", "sentences": True})
        plain = await client.post("/predict", json={"text": "LOUD. quiet."})
    assert_error(response, 501, "not_implemented")
    assert plain.status_code == 200


async def test_sentences_must_be_a_boolean(tiny: httpx.AsyncClient) -> None:
    response = await tiny.post("/predict", json={"text": "Great.", "sentences": "yes"})
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "sentences"


async def test_the_schema_describes_the_request_and_the_answer(tiny: httpx.AsyncClient) -> None:
    schema = (await tiny.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    content = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert content["schema"]["properties"]["sentences"]["type"] == "boolean"
    assert set(components["SentencePrediction"]["required"]) == {
        "start", "end", "label", "confidence", "probabilities"
    }
    assert "mixed" in components["Prediction"]["properties"]
    assert content["examples"]["sentences"]["value"] == {"text": ISSUE_EXAMPLE, "sentences": True}


def test_rows_are_scored_in_calls_of_similar_length() -> None:
    # A review of 300 tokens and its sentences: the sentences are not padded to 300.
    groups = length_groups([300, 12, 20, 9, 250, 14, 1])
    assert groups == [[0, 4], [2, 5, 1, 3], [6]]
    assert length_groups([5]) == [[0]]


# -- the shipped model -----------------------------------------------------------------------

shipped = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_dir(), reason="shipped checkpoint not built yet")


@pytest.fixture
async def shipped_client() -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(Settings(model_dir=None, log_level="WARNING"))) as client:
        yield client


@shipped
async def test_the_issue_example_is_mixed(shipped_client: httpx.AsyncClient) -> None:
    response = await shipped_client.post("/predict", json={"text": ISSUE_EXAMPLE, "sentences": True})
    prediction = response.json()["predictions"][0]
    assert [(s["start"], s["end"], s["label"]) for s in prediction["sentences"]] == [
        (0, 59, "negative"), (60, 88, "positive")
    ]
    assert prediction["mixed"] is True
    metrics = (await shipped_client.get("/metrics")).text
    assert 'sentiment_sentence_documents_total{mixed="true"' in metrics


@shipped
@pytest.mark.parametrize("text", ONE_SIDED, ids=("positive", "negative"))
async def test_a_one_sided_review_is_not_mixed(shipped_client: httpx.AsyncClient, text: str) -> None:
    response = await shipped_client.post("/predict", json={"text": text, "sentences": True})
    prediction = response.json()["predictions"][0]
    assert len(prediction["sentences"]) == 5
    assert {s["label"] for s in prediction["sentences"]} == {prediction["label"]}
    assert prediction["mixed"] is False


@shipped
async def test_the_default_answer_is_the_offline_models(shipped_client: httpx.AsyncClient) -> None:
    # The contract for requests that do not ask: the same fields, the offline probabilities.
    predictor = Predictor.load()
    texts = [ISSUE_EXAMPLE, *ONE_SIDED]
    body = (await shipped_client.post("/predict", json={"texts": texts})).json()
    offline = predictor.predict_texts(texts).tolist()
    for prediction, expected in zip(body["predictions"], offline, strict=True):
        assert list(prediction) == ["label", "confidence", "probabilities", "language", "readable"]
        got = [prediction["probabilities"][label] for label in predictor.labels]
        assert got == pytest.approx(expected, abs=1e-5)
    assert orjson.loads(orjson.dumps(body)) == body
