"""Smoke tests of the checkpoint shipped in artifacts/ (the service's default model)."""

import pytest

from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.predictor import Predictor


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor(load_checkpoint())


def test_it_is_the_default_and_loads_cleanly(shipped: Predictor) -> None:
    assert shipped.checkpoint.path == DEFAULT_CHECKPOINT
    assert shipped.labels == ["negative", "positive"]
    assert shipped.checkpoint.metrics["validation"]["accuracy"] > 0.85
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size <= 25 * 1024 * 1024


def test_scores_obvious_reviews(shipped: Predictor) -> None:
    probs = shipped.predict_texts([
        "One of the best films I have ever seen. Wonderful acting, a beautiful story, "
        "I loved every minute of it and will watch it again.",
        "Awful. A boring, stupid mess with terrible acting and no plot. The worst movie "
        "I have seen in years, a complete waste of time.",
    ])
    assert probs[0, 1] > 0.9 and probs[1, 0] > 0.9
