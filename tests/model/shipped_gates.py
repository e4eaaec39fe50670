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
SHIPPED_MANIFEST_SHA256 = "26e1a6b018f68d5b972e2424ec036bbc0475eaef990541ce21cbf55db3d362ce"

# Floors on tests/model/data/frozen_eval.tsv. binary_accuracy: the negative and positive
# texts, read as P(positive) > P(negative). The three-class gates apply only to a checkpoint
# with a `neutral` label (set them when shipping one; they are not checked otherwise).
# imdb-sentiment@26e1a6b018f6 (binary) scores binary_accuracy 0.917 (198 of 216); a model with
# random weights scores about 0.5.
FROZEN_EVAL_FLOORS = {
    "binary_accuracy": 0.89,
    "three_class_accuracy": 0.70,
    "neutral_recall": 0.50,
}

# Failure-rate ceilings for the behavioural suite (model/checklist.py, the full default run;
# `make checklist` prints the report).
CHECKLIST_CEILINGS = {
    "simple positive": 0.05, "simple negative": 0.05, "negated positive": 0.20,
    "would not recommend": 0.10, "ratings positive": 0.15, "ratings negative": 0.10,
    "emoji and emoticons positive": 0.15, "emoji and emoticons negative": 0.15,
    "contrast, positive after 'but'": 0.10, "contrast, negative after 'but'": 0.10,
    "typo in the sentiment word": 0.15, "upper case": 0.02, "neutral sentence appended": 0.10,
    "positive sentence added": 0.05, "negative sentence added": 0.05,
}

# The quick run of the suite in tests/model/test_checklist.py (4 cases a test): the overall
# rate, and the plain statements a model that reads nothing fails one way or the other.
# imdb-sentiment@26e1a6b018f6: 0.097 overall, 0 and 0; random weights (4 seeds): 0.19-0.44
# overall, and 0.5-1.0 on one of the two plain tests.
CHECKLIST_SMALL_RUN_CEILINGS = {"overall": 0.15, "simple positive": 0.25, "simple negative": 0.25}


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
