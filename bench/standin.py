"""The model to benchmark: the shipped checkpoint, or a random-weight stand-in of its architecture.

Speed depends on the architecture and the review lengths (the text pipeline's max_tokens), not on
the weights, so a stand-in with the training CLI's default architecture and text settings,
with a vocabulary fitted on the benchmark's reviews, measures the same speed as the real model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import DEFAULT_CHECKPOINT, Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from model.predictor import Predictor
from model.rnn import ModelConfig, SentimentRNN
from model.text import TextConfig, TextPipeline

logger = logging.getLogger(__name__)


@dataclass
class ModelChoice:
    directory: Path
    kind: str  # "shipped" | "given" | "stand-in"
    model_id: str
    architecture: dict[str, Any]
    max_tokens: int
    note: str = ""


def shipped_architecture() -> tuple[ModelConfig, TextConfig]:
    """The training CLI's defaults (what `make train` ships), vocabulary size left to the caller."""
    from model.train import TrainConfig

    shipped = TrainConfig()
    text = TextConfig(
        max_tokens=shipped.max_tokens,
        head_fraction=shipped.head_fraction,
        min_freq=shipped.min_freq,
        max_vocab=shipped.max_vocab,
    )
    return shipped.model.sized(vocab_size=3, num_classes=2), text


def build_standin(directory: Path, texts: list[str], tiny: bool = False) -> Checkpoint:
    model_cfg, text_cfg = shipped_architecture()
    if tiny:  # smoke runs: same code paths, a fraction of the work
        model_cfg = ModelConfig(vocab_size=3, embed_dim=16, hidden_dim=12, cell="gru")
        text_cfg = TextConfig(max_tokens=64, min_freq=1)
    pipeline = TextPipeline.fit(texts, text_cfg)
    arch = {**model_cfg.to_dict(), "vocab_size": len(pipeline.vocab)}
    torch.manual_seed(0)
    ckpt = Checkpoint(
        model=SentimentRNN(ModelConfig.from_dict(arch)).eval(),
        pipeline=pipeline,
        labels=["negative", "positive"],
        temperature=1.0,
        extra={"stand_in": "random weights, shipped architecture (bench/standin.py)"},
    )
    save_checkpoint(ckpt, directory)
    return load_checkpoint(directory)


def load_predictor(model_dir: Path | None) -> Predictor:
    """A peer's model (bench/peers.py): the checkpoint in `model_dir` (None: the shipped one)."""
    torch.set_num_threads(1)  # like the service: one torch thread per model call
    return Predictor.load(model_dir)


def choose_model(given: Path | None, scratch: Path, texts: list[str], tiny: bool) -> ModelChoice:
    """The given checkpoint, else the shipped one, else a stand-in built in `scratch`."""
    if given is not None:
        ckpt, kind, note = load_checkpoint(given), "given", ""
    else:
        try:
            ckpt, kind, note = load_checkpoint(DEFAULT_CHECKPOINT), "shipped", ""
        except CheckpointError as exc:
            logger.warning("shipped model unusable (%s): benchmarking a random-weight stand-in", exc)
            ckpt, kind = build_standin(scratch / "stand-in", texts, tiny), "stand-in"
            note = (
                "STAND-IN: random weights with the shipped architecture (the shipped checkpoint "
                f"{DEFAULT_CHECKPOINT} was not there); speed is representative, predictions are not"
            )
    assert ckpt.path is not None
    return ModelChoice(
        ckpt.path, kind, ckpt.model_id, ckpt.model.config.to_dict(), ckpt.pipeline.config.max_tokens, note
    )
