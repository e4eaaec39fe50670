"""The shipped checkpoint (artifacts/review-sentiment) serves sensible answers. Skipped until
the model has been trained and written there."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from model.checkpoint import DEFAULT_CHECKPOINT
from service.app.factory import create_app
from service.config import Settings
from tests.service.conftest import running

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_dir(), reason="shipped checkpoint not built yet"),
]

POSITIVE = (
    "One of the best films I have ever seen. The acting is superb, the story is moving and "
    "beautifully told, and the music is wonderful. A true masterpiece; I loved every minute "
    "and will watch it again and again. Highly recommended!"
)
NEGATIVE = (
    "This was the worst movie I have seen in years. The plot is boring and predictable, the "
    "acting is awful and the dialogue is painfully bad. A complete waste of time and money; "
    "I nearly walked out. Avoid it at all costs."
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(Settings(model_dir=None, log_level="WARNING"))) as c:
        yield c


async def test_obvious_reviews_get_the_obvious_labels(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", json={"texts": [POSITIVE, NEGATIVE]})
    assert response.status_code == 200, response.text
    positive, negative = response.json()["predictions"]
    assert positive["label"] == "positive" and positive["confidence"] > 0.8
    assert negative["label"] == "negative" and negative["confidence"] > 0.8


async def test_single_review_matches_its_batch_answer(client: httpx.AsyncClient) -> None:
    alone = (await client.post("/predict", json={"text": NEGATIVE})).json()["predictions"][0]
    batch = (await client.post("/predict", json={"texts": [POSITIVE, NEGATIVE]})).json()
    for label, p in alone["probabilities"].items():
        assert batch["predictions"][1]["probabilities"][label] == pytest.approx(p, abs=1e-5)


async def test_shipped_metadata(client: httpx.AsyncClient) -> None:
    info = (await client.get("/model")).json()
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert info["id"].startswith(DEFAULT_CHECKPOINT.name)
    assert info["parameters"] > 0 and info["vocab_size"] > 1000
