"""What the shipped model (model.checkpoint.DEFAULT_CHECKPOINT) must be and must score.

The one place to update, on purpose, when a new model is shipped: run
`python -m tests.model.shipped_gates`, which prints the new model's manifest sha256 and its
scores on the frozen evaluation set, then set the values below (floors a little under those
scores, so that noise-free re-scoring passes and a real regression does not).
"""

from __future__ import annotations

# sha256 of the shipped checkpoint's manifest.json. The manifest lists the sha256 of every
# other file and loading checks them, so this one value pins the weights, config and
# vocabulary: an edited file with a rewritten manifest still changes it.
SHIPPED_MANIFEST_SHA256 = "8ad20bcb21f8e19a82738d61f37a5b484eefb97d4bcc2ca3f098f3cf609fcfc4"

# Floors on tests/model/data/frozen_eval.tsv. binary_accuracy: the negative and positive
# texts, read as P(positive) > P(negative). The three-class gates apply only to a checkpoint
# with a `neutral` label (set them when shipping one; they are not checked otherwise).
# review-sentiment@8ad20bcb21f8 (three classes) scores binary 0.958 (207 of 216), three-class
# 0.736 and neutral recall 0.127 (it reads most plain statements as polar; the behavioural
# "neutral statements" test says the same); random weights score binary 0.44-0.52 and
# three-class 0.26-0.38. The binary model before it, imdb-sentiment@26e1a6b018f6, scored 0.917.
FROZEN_EVAL_FLOORS = {
    "binary_accuracy": 0.93,
    "three_class_accuracy": 0.70,
    "neutral_recall": 0.10,
}

# Failure-rate ceilings for the behavioural suite (model/checklist.py, the full default run;
# `make checklist` prints the report).
# Every test of the suite has one but "negated negative", which the model still fails (see the
# model card).
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

# The quick run of the suite in tests/model/test_checklist.py (4 cases a test): the overall
# rate, and the plain statements a model that reads nothing fails one way or the other.
# review-sentiment@8ad20bcb21f8: 0.132 overall, 0 and 0; random weights (4 seeds): 0.29-0.62
# overall, and 0.5-1.0 on one of the two plain tests.
CHECKLIST_SMALL_RUN_CEILINGS = {"overall": 0.20, "simple positive": 0.25, "simple negative": 0.25}


def main() -> None:
    """Print what to pin and what the shipped model scores, for a deliberate update."""
    from model.checklist import PredictorScorer, build_suite, run_suite
    from model.predictor import Predictor
    from tests.model.frozen_eval import load_rows, score

    predictor = Predictor.load()
    print(f"model: {predictor.checkpoint.model_id} labels: {predictor.labels}")
    print(f'SHIPPED_MANIFEST_SHA256 = "{predictor.checkpoint.sha256}"')
    print(f"frozen evaluation set: {score(predictor, load_rows())}")
    report = run_suite(build_suite(labels=predictor.labels), PredictorScorer())
    print("behavioural failure rates:", {t.name: round(t.failure_rate, 3) for t in report.tests})


if __name__ == "__main__":
    main()
