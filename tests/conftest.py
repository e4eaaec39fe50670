
"""Shared fixtures: tiny checkpoints and synthetic reviews built on the spot (no dataset)."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

import pytest
import torch

from model.checkpoint import Checkpoint, save_checkpoint
from model.rnn import ModelConfig, SentimentRNN
from model.text import TextConfig, TextPipeline

# The tests' models are tiny: one thread computes them fastest, and with two OpenMP threads on a
# busy 2-core machine each step waits for a core the other thread spins on (a 32-review batch
# of a 16-unit GRU took 10-30 s so, and training tests hit their time limit).
torch.set_num_threads(1)

POSITIVE_WORDS = ["good", "great", "wonderful", "excellent", "loved", "superb", "brilliant"]
NEGATIVE_WORDS = ["bad", "awful", "terrible", "boring", "hated", "worst", "dreadful"]
NEUTRAL_WORDS = ["the", "movie", "film", "plot", "actor", "scene", "was", "and", "it", "a",
                 "story", "director", "music", "ending", "character", "this", "of", "in"]


def synthetic_reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs whose label is carried by a few sentiment words among neutral ones."""
    rng = random.Random(seed)
    reviews = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        cue = POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS
        words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(5, 40))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        reviews.append((" ".join(words).capitalize() + ".", label))
    return reviews


def write_synthetic_csv(
    path: Path, n: int, seed: int, header: tuple[str, str] = ("text", "label")
) -> Path:
    """`synthetic_reviews(n, seed)` as a CSV file with the given column names."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(synthetic_reviews(n, seed))
    return path


def build_checkpoint(
    directory: Path, seed: int = 0, labels: tuple[str, ...] = ("negative", "positive"), **arch: object
) -> Checkpoint:
    """A small random-weight checkpoint over the synthetic vocabulary, written to `directory`."""
    torch.manual_seed(seed)
    pipeline = TextPipeline.fit(
        [t for t, _ in synthetic_reviews(200, seed)], TextConfig(min_freq=1, max_tokens=64)
    )
    defaults: dict[str, object] = {"embed_dim": 16, "hidden_dim": 12, "cell": "gru"}
    config = ModelConfig(vocab_size=len(pipeline.vocab), num_classes=len(labels),  # type: ignore[arg-type]
                         **{**defaults, **arch})
    ckpt = Checkpoint(
        model=SentimentRNN(config).eval(),
        pipeline=pipeline,
        labels=list(labels),
        temperature=1.3,
        metrics={"validation": {"accuracy": 0.5}},
    )
    save_checkpoint(ckpt, directory)
    return ckpt


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint shared by the session's tests: read it, never modify it."""
    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    build_checkpoint(directory)
    return directory


def reinitialised(ckpt: Checkpoint, seed: int = 0) -> Checkpoint:
    """`ckpt` with fresh random weights: its architecture, text pipeline, labels and temperature.
    What a quality gate must refuse: a gate this passes measures nothing."""
    torch.manual_seed(seed)
    return dataclasses.replace(ckpt, model=SentimentRNN(ckpt.model.config).eval(), sha256="")
