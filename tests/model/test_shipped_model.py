"""Smoke tests of the checkpoint shipped in artifacts/ (the service's default model)."""

import pytest

from model.checklist import PredictorScorer, build_suite, run_suite
from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.predictor import Predictor
from model.text import TOKENIZER


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor(load_checkpoint())


def test_it_is_the_default_and_loads_cleanly(shipped: Predictor) -> None:
    assert shipped.checkpoint.path == DEFAULT_CHECKPOINT
    assert shipped.labels == ["negative", "neutral", "positive"]
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size <= 40 * 1024 * 1024  # the budget for a checkpoint


def test_onnx_runtime_gives_pytorchs_answers(shipped: Predictor) -> None:
    texts = [
        "Not bad at all, I would watch it again :)",
        "a dull , lifeless and overlong film",
        "word " * 600,  # past max_tokens: head and tail kept
        "Five stars. 10/10, loved it!",
        "meh",
    ]
    on_torch = Predictor(shipped.checkpoint, backend="torch").predict_texts(texts)
    assert shipped.backend == "onnx"
    diff = (shipped.predict_texts(texts) - on_torch).abs().max().item()
    assert diff <= 1e-5


def test_scores_obvious_reviews(shipped: Predictor) -> None:
    probs = shipped.predict_texts([
        "One of the best films I have ever seen. Wonderful acting, a beautiful story, "
        "I loved every minute of it and will watch it again.",
        "Awful. A boring, stupid mess with terrible acting and no plot. The worst movie "
        "I have seen in years, a complete waste of time.",
    ])
    positive, negative = shipped.labels.index("positive"), shipped.labels.index("negative")
    assert probs[0, positive] > 0.9 and probs[1, negative] > 0.9


def test_it_records_its_tokenizer_and_per_source_metrics(shipped: Predictor) -> None:
    assert shipped.pipeline.config.tokenizer == TOKENIZER
    by_source = shipped.checkpoint.metrics["by_source"]
    # quality gates a retrain must keep (validation splits; the model card has the figures):
    # binary sets as positive vs negative, the others in three classes
    gates = {"aclImdb_train": 0.90, "sst2/dev": 0.85, "amazon_multidomain": 0.89,
             "yelp_reviews": 0.80, "amazon_musical_instruments": 0.88,
             "semeval_tweets_train": 0.64, "sst5_dev": 0.67}
    below = {name: by_source[name]["accuracy"] for name, floor in gates.items()
             if by_source[name]["accuracy"] < floor}
    assert not below
    assert by_source["aclImdb_train"]["classes"] == ["negative", "positive"]
    for row in by_source.values():
        assert set(row["by_length"]) <= {"<=20", "21-100", ">100"}


def test_reads_short_reviews_ratings_emoji_and_typos(shipped: Predictor) -> None:
    texts = {
        "Five stars!": "positive", "0/10": "negative", "👍": "positive", "👎": "negative",
        "Great phone :)": "positive", "Waste of money.": "negative",
        "I would not recommend this to anyone.": "negative", "The food was ecxellent.": "positive",
        "The staff was rude, but overall the stay was wonderful.": "positive",
    }
    probs = shipped.predict_texts(list(texts))
    got = {t: shipped.labels[int(p.argmax())] for t, p in zip(texts, probs, strict=True)}
    assert got == texts


# Failure-rate ceilings for the behavioural suite (make checklist prints the full report).
CHECKLIST_CEILINGS = {
    "simple positive": 0.05, "simple negative": 0.05, "negated positive": 0.45,
    "would not recommend": 0.10, "ratings positive": 0.10, "ratings negative": 0.10,
    "emoji and emoticons positive": 0.10, "emoji and emoticons negative": 0.10,
    "contrast, positive after 'but'": 0.05, "contrast, negative after 'but'": 0.05,
    "app, delivery and service complaints": 0.10, "polite negatives": 0.35,
    "neutral statements": 0.75,
    "typo in the sentiment word": 0.15, "upper case": 0.02, "neutral sentence appended": 0.10,
    "positive sentence added": 0.05, "negative sentence added": 0.05,
}


def test_behavioural_suite_stays_under_its_ceilings() -> None:
    scorer = PredictorScorer()
    report = run_suite(build_suite(labels=scorer.labels), scorer)
    rates = {t.name: t.failure_rate for t in report.tests}
    over = {name: rates[name] for name, ceiling in CHECKLIST_CEILINGS.items() if rates[name] > ceiling}
    assert not over
    # every test of the suite has its ceiling, but the one the model still fails (model card)
    assert set(rates) - {"negated negative"} == set(CHECKLIST_CEILINGS)
