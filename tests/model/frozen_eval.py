"""The project's own frozen evaluation set (tests/model/data/frozen_eval.tsv) and its scoring.

Short texts written for this project (products, restaurants, apps, deliveries, support, films
and tweet-like lines), labelled negative / neutral / positive; no row of any dataset, so it
may be committed, and it never changes: a score on it is comparable from model to model.

A binary checkpoint is scored on the polar texts only, reading P(positive) against
P(negative); a checkpoint with a `neutral` label is also scored on all three classes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from model.predictor import Predictor

FROZEN_EVAL = Path(__file__).with_name("data") / "frozen_eval.tsv"
LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Row:
    label: str
    domain: str
    text: str


def load_rows(path: Path = FROZEN_EVAL) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [Row(r["label"], r["domain"], r["text"]) for r in csv.DictReader(handle, delimiter="\t")]


def score(predictor: Predictor, rows: list[Row]) -> dict[str, float]:
    """binary_accuracy always; three_class_accuracy and neutral_recall when the checkpoint has
    a `neutral` label."""
    labels = predictor.labels
    probs = predictor.predict_texts([r.text for r in rows])
    negative, positive = labels.index("negative"), labels.index("positive")
    polar = [(r, p) for r, p in zip(rows, probs, strict=True) if r.label != "neutral"]
    scores = {
        "binary_accuracy": sum(
            (p[positive] > p[negative]).item() == (r.label == "positive") for r, p in polar
        ) / len(polar)
    }
    if "neutral" in labels:
        predicted = [labels[int(p.argmax())] for p in probs]
        scores["three_class_accuracy"] = sum(
            guess == r.label for r, guess in zip(rows, predicted, strict=True)
        ) / len(rows)
        neutral = [guess for r, guess in zip(rows, predicted, strict=True) if r.label == "neutral"]
        scores["neutral_recall"] = sum(guess == "neutral" for guess in neutral) / len(neutral)
    return scores


def below_floors(scores: dict[str, float], floors: dict[str, float]) -> dict[str, str]:
    """Each gate the scores miss, as 'score < floor'; only the gates the scores have."""
    return {
        name: f"{scores[name]:.3f} < {floor}"
        for name, floor in floors.items()
        if name in scores and scores[name] < floor
    }
