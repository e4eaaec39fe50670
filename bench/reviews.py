"""Reviews to benchmark with: real IMDB reviews when the archive is there, generated text otherwise."""

from __future__ import annotations

import json
import logging
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "aclImdb_train.tar.gz"

_POSITIVE = ["good", "great", "wonderful", "excellent", "loved", "superb", "brilliant", "moving"]
_NEGATIVE = ["bad", "awful", "terrible", "boring", "hated", "worst", "dreadful", "dull"]
_NEUTRAL = [
    "the",
    "movie",
    "film",
    "plot",
    "actor",
    "actress",
    "scene",
    "was",
    "and",
    "it",
    "a",
    "story",
    "director",
    "music",
    "ending",
    "character",
    "this",
    "of",
    "in",
    "to",
    "is",
    "that",
    "with",
    "as",
    "for",
    "his",
    "her",
    "but",
    "on",
    "at",
    "by",
    "an",
    "be",
    "one",
    "all",
    "they",
    "from",
    "have",
    "who",
    "camera",
    "script",
    "dialogue",
    "performance",
    "cast",
    "series",
    "episode",
    "time",
    "years",
    "first",
    "watch",
    "seen",
]


@dataclass
class Reviews:
    texts: list[str]
    real: bool  # True: IMDB reviews from `source`; False: generated text
    source: str

    def describe(self) -> dict[str, Any]:
        chars = [len(t) for t in self.texts]
        return {
            "real": self.real,
            "source": self.source,
            "count": len(self.texts),
            "median_chars": statistics.median(chars) if chars else 0,
            "mean_chars": round(statistics.fmean(chars), 1) if chars else 0,
        }


def generated_reviews(n: int, seed: int = 0) -> list[str]:
    """Review-like text whose word counts follow IMDB's spread (median ~170 words, long tail)."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        cue = _POSITIVE if i % 2 == 0 else _NEGATIVE
        n_words = int(min(1200, max(8, rng.lognormvariate(5.15, 0.7))))
        words = [rng.choice(_NEUTRAL) for _ in range(n_words)]
        for _ in range(max(1, n_words // 25)):
            words[rng.randrange(n_words)] = rng.choice(cue)
        sentences = [" ".join(words[j : j + 14]) for j in range(0, n_words, 14)]
        texts.append(". ".join(s.capitalize() for s in sentences) + ".")
    return texts


def load_reviews(path: Path | None, limit: int, seed: int = 0, max_chars: int = 20_000) -> Reviews:
    """Up to `limit` reviews, a fixed-seed random sample; generated text when `path` is missing."""
    if path is not None and path.exists():
        from model.data import load_examples

        logger.info("reading real reviews from %s", path)
        examples, _ = load_examples(path)
        texts = [e.text for e in examples if 0 < len(e.text) <= max_chars]
        random.Random(seed).shuffle(texts)
        return Reviews(texts[:limit], real=True, source=str(path))
    why = "no --data given" if path is None else f"{path} not found"
    logger.warning("GENERATED TEXT, not real reviews (%s)", why)
    return Reviews(generated_reviews(limit, seed), real=False, source=f"generated ({why})")


def typical(texts: list[str], n: int, tolerance: float = 0.15) -> list[str]:
    """Up to n texts whose length is within `tolerance` of the median length ("a typical review")."""
    median = statistics.median(len(t) for t in texts)
    near = [t for t in texts if abs(len(t) - median) <= tolerance * median]
    return near[:n] or texts[:n]


def with_sentences(texts: list[str], n: int, sentences: int = 20, tolerance: int = 2) -> list[str]:
    """Up to n texts of `sentences` sentences (give or take `tolerance`), as the service
    splits them; generated ones of exactly that many when too few are found."""
    from model.sentences import split_sentences

    near = [t for t in texts if abs(len(split_sentences(t)) - sentences) <= tolerance][:n]
    if near:
        return near
    rng = random.Random(0)
    return [
        " ".join(
            " ".join(rng.choice(_NEUTRAL) for _ in range(12)).capitalize()
            + f" {rng.choice(_POSITIVE if i % 2 else _NEGATIVE)}."
            for _ in range(sentences)
        )
        for i in range(n)
    ]


def write_bodies(
    texts: list[str], path: Path, explain: bool = False, sentences: bool = False
) -> Path:
    """One JSON request body per line (JSON strings never contain a raw newline)."""
    with path.open("w", encoding="utf-8") as handle:
        for text in texts:
            body: dict[str, Any] = {"text": text}
            if explain:
                body["explain"] = True
            if sentences:
                body["sentences"] = True
            handle.write(json.dumps(body, ensure_ascii=False) + "\n")
    return path
