"""The checkpoint shipped in artifacts/ (the service's default model): the exact files, and
what it scores when re-measured here. The pinned hash and the quality floors are in
tests/model/shipped_gates.py, the one place to update when a new model is shipped.

Each quality gate is also run against the same checkpoint with re-initialised (random)
weights, which it must refuse: a gate a random model passes measures nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checklist import PredictorScorer, build_suite, run_suite
from model.checkpoint import DEFAULT_CHECKPOINT, MANIFEST, WEIGHTS, Checkpoint, _sha256, load_checkpoint
from model.predictor import Predictor
from model.text import TOKENIZER
from tests.conftest import reinitialised
from tests.model.frozen_eval import below_floors, load_rows, score
from tests.model.shipped_gates import CHECKLIST_CEILINGS, FROZEN_EVAL_FLOORS, SHIPPED_MANIFEST_SHA256

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
UPDATE = "if the model changed on purpose, set it in tests/model/shipped_gates.py"


@pytest.fixture(scope="module")
def shipped() -> Predictor:
    return Predictor(load_checkpoint())


@pytest.fixture(scope="module")
def random_model(shipped: Predictor) -> Predictor:
    return Predictor(reinitialised(shipped.checkpoint))




# -- the exact files -------------------------------------------------------------------------


def test_it_is_the_default_and_loads_cleanly(shipped: Predictor) -> None:
    assert shipped.checkpoint.path == DEFAULT_CHECKPOINT
    labels = shipped.labels
    assert labels in (["negative", "positive"], ["negative", "neutral", "positive"]), labels
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size <= 40 * 1024 * 1024  # the budget for a checkpoint


def pin_mismatch(directory: Path) -> str | None:
    """Why the checkpoint at `directory` is not the pinned one, or None if it is. Loading
    checks every file against the manifest; the pin checks the manifest itself."""
    sha = load_checkpoint(directory).sha256
    if sha != SHIPPED_MANIFEST_SHA256:
        return f"{directory}: manifest sha256 {sha}, pinned {SHIPPED_MANIFEST_SHA256} ({UPDATE})"
    return None


def test_the_shipped_files_are_the_pinned_ones() -> None:
    assert pin_mismatch(DEFAULT_CHECKPOINT) is None


def test_edited_weights_with_a_rewritten_manifest_load_but_miss_the_pin(tmp_path: Path) -> None:
    # The manifest vouches for itself: an edit that rewrites it passes every load-time check.
    # Only a hash kept outside the checkpoint, here, tells the files changed.
    directory = tmp_path / DEFAULT_CHECKPOINT.name
    shutil.copytree(DEFAULT_CHECKPOINT, directory)
    state = load_file(str(directory / WEIGHTS))
    state["classifier.bias"][0] += 0.5
    save_file(state, str(directory / WEIGHTS), metadata={"format_version": "1"})
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["files"][WEIGHTS] = _sha256(directory / WEIGHTS)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    edited = load_checkpoint(directory)
    assert edited.model.classifier.bias[0] != load_checkpoint().model.classifier.bias[0]
    assert "pinned" in (pin_mismatch(directory) or "")


def test_the_readme_names_the_shipped_model(shipped: Predictor) -> None:
    # The API examples (README and docs/) show the id the service reports ("model" and /model's
    # "id"), written compactly as the service writes JSON or with a space after the colon.
    text = "\n".join(path.read_text() for path in EXAMPLES)
    named = set(re.findall(r'"(?:model|id)":\s*"([\w.-]+@[0-9a-f]{12})"', text))
    assert named == {shipped.checkpoint.model_id}, (named, shipped.checkpoint.model_id)


def test_it_records_its_tokenizer_and_per_source_metrics(shipped: Predictor) -> None:
    # What the model card is written from: the training's own validation figures, kept as a
    # record (the quality gates below re-measure instead). Binary sets as positive vs negative,
    # the others in three classes.
    assert shipped.pipeline.config.tokenizer == TOKENIZER
    by_source = shipped.checkpoint.metrics["by_source"]
    recorded = {"aclImdb_train": 0.90, "sst2/dev": 0.85, "amazon_multidomain": 0.89,
                "yelp_reviews": 0.80, "amazon_musical_instruments": 0.88,
                "semeval_tweets_train": 0.64, "sst5_dev": 0.67}
    below = {name: by_source[name]["accuracy"] for name, floor in recorded.items()
             if by_source[name]["accuracy"] < floor}
    assert not below
    assert by_source["aclImdb_train"]["classes"] == ["negative", "positive"]
    for row in by_source.values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["n"] > 0
        assert set(row["by_length"]) <= {"<=20", "21-100", ">100"}


# -- re-measured quality ---------------------------------------------------------------------


def test_the_frozen_set_scores_at_least_its_floors(shipped: Predictor) -> None:
    scores = score(shipped, load_rows())
    print(f"frozen evaluation set, {shipped.checkpoint.model_id}: {scores}")  # shown by -s / -rA
    assert not below_floors(scores, FROZEN_EVAL_FLOORS), scores


def test_the_frozen_set_floors_refuse_a_random_model(random_model: Predictor) -> None:
    scores = score(random_model, load_rows())
    assert below_floors(scores, FROZEN_EVAL_FLOORS).keys() >= {"binary_accuracy"}, scores


def test_the_frozen_set_is_the_projects_own_and_balanced() -> None:
    rows = load_rows()
    assert len(rows) >= 250 and len({r.text for r in rows}) == len(rows)
    counts = {label: sum(r.label == label for r in rows) for label in ("negative", "neutral", "positive")}
    assert min(counts.values()) >= 60 and counts["negative"] == counts["positive"], counts
    domains = {"product", "restaurant", "app", "delivery", "support", "movie", "tweet"}
    assert {r.domain for r in rows} == domains


class AnswerKey:
    """A stand-in predictor that answers each frozen text with its label, except the texts in
    `wrong`, answered with `instead`: the scores it must get are known exactly."""

    def __init__(self, labels: list[str], wrong: dict[str, str]) -> None:
        self.labels = labels
        self.truth = {r.text: r.label for r in load_rows()}
        self.wrong = wrong

    def predict_texts(self, texts: list[str]) -> torch.Tensor:
        probs = torch.zeros(len(texts), len(self.labels))
        for i, text in enumerate(texts):
            label = self.wrong.get(text, self.truth[text])
            probs[i, self.labels.index(label) if label in self.labels else 0] = 1.0
        return probs


def test_the_frozen_set_is_scored_as_two_or_three_classes() -> None:
    rows = load_rows()
    polar = [r for r in rows if r.label != "neutral"]
    neutral = [r for r in rows if r.label == "neutral"]
    two = AnswerKey(["negative", "positive"], {polar[0].text: "positive", polar[-1].text: "negative"})
    assert score(two, rows) == {"binary_accuracy": 1 - 2 / len(polar)}  # type: ignore[arg-type]
    wrong = {polar[0].text: "neutral", neutral[0].text: "positive", neutral[1].text: "negative"}
    three = AnswerKey(["negative", "neutral", "positive"], wrong)
    assert score(three, rows) == pytest.approx({  # type: ignore[arg-type]
        # a polar text read as neutral: P(positive) and P(negative) are both 0, so "negative"
        "binary_accuracy": 1 - (polar[0].label == "positive") / len(polar),
        "three_class_accuracy": 1 - 3 / len(rows),
        "neutral_recall": 1 - 2 / len(neutral),
    })
    assert below_floors({"binary_accuracy": 0.5}, FROZEN_EVAL_FLOORS) == {
        "binary_accuracy": f"0.500 < {FROZEN_EVAL_FLOORS['binary_accuracy']}"
    }


def test_onnx_runtime_gives_pytorchs_answers(shipped: Predictor) -> None:
    texts = [r.text for r in load_rows()] + [
        "word " * 600,  # past max_tokens: head and tail kept
        "Five stars. 10/10, loved it!",
        "meh",
    ]
    on_torch = Predictor(shipped.checkpoint, backend="torch").predict_texts(texts)
    assert shipped.backend == "onnx"
    diff = (shipped.predict_texts(texts) - on_torch).abs().max().item()
    assert diff <= 1e-5


def test_scores_obvious_reviews(shipped: Predictor) -> None:
    negative, positive = shipped.labels.index("negative"), shipped.labels.index("positive")
    probs = shipped.predict_texts([
        "One of the best films I have ever seen. Wonderful acting, a beautiful story, "
        "I loved every minute of it and will watch it again.",
        "Awful. A boring, stupid mess with terrible acting and no plot. The worst movie "
        "I have seen in years, a complete waste of time.",
    ])
    assert probs[0, positive] > 0.9 and probs[1, negative] > 0.9


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


def over_ceilings(predictor: Predictor) -> dict[str, float]:
    report = run_suite(build_suite(labels=predictor.labels), PredictorScorer(predictor), "checked")
    rates = {t.name: t.failure_rate for t in report.tests}
    # A ceiling for a test this model's suite lacks (a neutral-only test) is not a pass.
    return {name: rates.get(name, 1.0) for name, ceiling in CHECKLIST_CEILINGS.items()
            if rates.get(name, 1.0) > ceiling}


def test_behavioural_suite_stays_under_its_ceilings(shipped: Predictor) -> None:
    assert not over_ceilings(shipped)
    # every test of the suite has its ceiling, but the one the model still fails (model card)
    names = {t.name for t in build_suite(max_cases=1, labels=shipped.labels)}
    assert names - {"negated negative"} == set(CHECKLIST_CEILINGS)


def test_behavioural_ceilings_refuse_a_random_model(random_model: Predictor) -> None:
    assert over_ceilings(random_model)


def test_a_random_model_is_what_the_gates_are_shown_against(
    shipped: Predictor, random_model: Predictor
) -> None:
    # Same architecture, pipeline and labels; only the weights differ.
    fresh: Checkpoint = random_model.checkpoint
    assert fresh.model.config == shipped.checkpoint.model.config and fresh.labels == shipped.labels
    assert not torch.equal(fresh.model.classifier.weight, shipped.checkpoint.model.classifier.weight)
