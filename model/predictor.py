"""Scoring reviews with a loaded checkpoint: texts -> calibrated probabilities.

The split into `text_to_ids` (text -> ids) and `predict_ids` (ids -> probabilities) lets the
service tokenise in the request handler and batch only the model call. Scoring runs on ONNX
Runtime (model/onnx_graph.py, the default) or on PyTorch itself: the same answers (1e-5).
The ONNX graph is a second implementation of the network, so a Predictor on it first checks
that it answers a fixed batch as PyTorch does, and refuses to load otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from tqdm import tqdm

from model.checkpoint import Checkpoint, load_checkpoint
from model.onnx_graph import GraphError, OnnxScorer
from model.rnn import SentimentRNN, pad_batch
from model.sentences import is_mixed

Backend = Literal["onnx", "torch"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# Largest gap allowed between the backends' probabilities on the check batch: they agree to
# ~1e-6 (float32 sums in another order); a graph that misreads a weight is off by far more.
AGREEMENT_TOLERANCE = 1e-4
# Graphs (OnnxScorer.digest) found to agree with PyTorch in this process, or in the parent it
# was forked from: a server checks once before forking, and its workers skip the check (and the
# memory that its PyTorch pass and throwaway session leave behind in each of them).
_AGREED: set[bytes] = set()


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """`--backend`, as every command line that scores with a `Predictor` offers it."""
    parser.add_argument("--backend", default="onnx", choices=BACKENDS,
                        help="onnx: ONNX Runtime (faster); torch: PyTorch (same answers, 1e-5)")


def prediction_row(labels: Sequence[str], probabilities: Sequence[float]) -> dict[str, Any]:
    """One answer as the service, `model.predict` and the benchmark's peers give it: the most
    probable label, its probability, and every label's."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": labels[best],
        "confidence": probabilities[best],
        "probabilities": dict(zip(labels, probabilities, strict=True)),
    }


def sentence_summary(
    labels: Sequence[str], spans: Sequence[tuple[int, int]], rows: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """A text's `sentences` (each span with its prediction row) and `mixed` (model/sentences.py's
    rule; None for a model without both polar labels): what the service and model.predict add."""
    sentences = [
        {"start": start, "end": end, **prediction_row(labels, probabilities)}
        for (start, end), probabilities in zip(spans, rows, strict=True)
    ]
    mixed = None
    if "positive" in labels and "negative" in labels:
        positive, negative = labels.index("positive"), labels.index("negative")
        mixed = is_mixed([p[positive] for p in rows], [p[negative] for p in rows])
    return {"sentences": sentences, "mixed": mixed}


class Predictor:
    def __init__(self, checkpoint: Checkpoint, batch_size: int = 64, backend: Backend = "onnx") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()
        self.pipeline = checkpoint.pipeline
        self.labels = checkpoint.labels
        self.temperature = checkpoint.temperature
        self.batch_size = batch_size
        self.backend = backend
        self._onnx = OnnxScorer(self.model) if backend == "onnx" else None
        if self._onnx is not None:
            self._check_backends_agree(self._onnx)

    @classmethod
    def load(
        cls, directory: str | Path | None = None, batch_size: int = 64, backend: Backend = "onnx"
    ) -> Predictor:
        return cls(load_checkpoint(directory), batch_size, backend)

    def _check_backends_agree(self, onnx: OnnxScorer) -> None:
        """GraphError unless the ONNX graph scores a fixed batch as PyTorch does: a service then
        fails its start-up instead of serving answers its model would not give."""
        digest = onnx.digest()
        if digest in _AGREED:
            return
        batch = check_batch(self.model.config.vocab_size, self.pipeline.config.max_tokens)
        on_onnx, on_torch = (
            torch.softmax(logits / self.temperature, dim=1)
            for logits in (onnx.logits_once(*pad_batch(batch)), model_logits(self.model, batch))
        )
        gap = float((on_onnx - on_torch).abs().max())
        if not gap <= AGREEMENT_TOLERANCE:  # a NaN fails too
            raise GraphError(
                f"{self.checkpoint.model_id}: the ONNX graph's probabilities differ from PyTorch's "
                f"by up to {gap:.3g} on a fixed batch (tolerance {AGREEMENT_TOLERANCE:g}); "
                "model/onnx_graph.py does not build this network as model/rnn.py runs it. Score "
                "with the torch backend (INFERENCE_BACKEND=torch) until it does"
            )
        _AGREED.add(digest)

    def text_to_ids(self, text: str) -> list[int]:
        return self.pipeline.encode(text)

    def logits_ids(self, sequences: Sequence[list[int]]) -> torch.Tensor:
        """Raw logits (N, C) for id lists, in input order. PyTorch packs the batch, so one call
        costs its real tokens; the ONNX graph runs every row to the longest one, so a batch of
        mixed lengths is scored in one call per group of similar lengths (`length_groups`)."""
        if self._onnx is None:
            return model_logits(self.model, sequences)
        groups = length_groups([len(ids) for ids in sequences])
        if len(groups) == 1:
            return self._onnx_logits(sequences)
        out = torch.empty(len(sequences), len(self.labels))
        for group in groups:
            out[group] = self._onnx_logits([sequences[i] for i in group])
        return out

    def _onnx_logits(self, sequences: Sequence[list[int]]) -> torch.Tensor:
        assert self._onnx is not None
        ids, lengths = pad_batch(list(sequences))
        return self._onnx.logits(ids, lengths)

    def predict_ids(self, sequences: Sequence[list[int]]) -> torch.Tensor:
        """Calibrated probabilities (N, C) for id lists, in input order."""
        return torch.softmax(self.logits_ids(sequences) / self.temperature, dim=1)

    def predict_texts(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        """Probabilities (N, C) in input order; batches are formed by length to cut padding."""
        return self.predict_encoded([self.text_to_ids(t) for t in texts], progress)

    def predict_encoded(self, encoded: list[list[int]], progress: bool = False) -> torch.Tensor:
        """Probabilities (N, C) for id lists of any number, in length-sorted batches."""
        return self._batched(encoded, self.predict_ids, progress)

    def logits_texts(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        encoded = [self.text_to_ids(t) for t in texts]
        return self._batched(encoded, self.logits_ids, progress)

    def logits_encoded(self, encoded: list[list[int]], progress: bool = False) -> torch.Tensor:
        """Raw logits (N, C) for id lists of any number, in length-sorted batches."""
        return self._batched(encoded, self.logits_ids, progress)

    def _batched(
        self,
        encoded: list[list[int]],
        fn: Callable[[Sequence[list[int]]], torch.Tensor],
        progress: bool,
    ) -> torch.Tensor:
        return in_length_batches(encoded, fn, self.batch_size, len(self.labels), progress)


def check_batch(vocab_size: int, max_tokens: int) -> list[list[int]]:
    """Reviews of one token up to full length, their ids drawn over the whole vocabulary with a
    fixed seed: every layer of the network, padding and a long recurrence included."""
    rng = np.random.default_rng(0)
    low = min(1, vocab_size - 1)  # no <pad> inside a review
    return [rng.integers(low, vocab_size, size).tolist() for size in (1, 7, 40, max_tokens)]


# A call's rows are padded to its longest: a row may join a call of rows up to 1.5 times its
# length plus this many tokens (short ones waste little, and each call costs ~0.1 ms).
GROUP_SLACK_TOKENS = 8


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Indices of `lengths` in groups to score in separate calls, longest first: each row's
    group is padded to at most 1.5 times its length (+ GROUP_SLACK_TOKENS)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    groups: list[list[int]] = []
    longest = 0
    for index in order:
        if not groups or 2 * longest > 3 * lengths[index] + 2 * GROUP_SLACK_TOKENS:
            groups.append([])
            longest = lengths[index]
        groups[-1].append(index)
    return groups


@torch.inference_mode()
def model_logits(model: SentimentRNN, sequences: Sequence[list[int]]) -> torch.Tensor:
    """Logits (N, C) for id lists in one call of `model` in eval mode, in input order.

    The model is left in the mode it was in (training evaluates between steps).
    """
    was_training = model.training
    model.eval()
    try:
        # Longest first lets the model pack without reordering; answers come back in input order.
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        ids, lengths = pad_batch([sequences[i] for i in order])
        logits = model(ids, lengths)
    finally:
        model.train(was_training)
    return logits[torch.argsort(torch.tensor(order))]


def in_length_batches(
    encoded: list[list[int]],
    fn: Callable[[Sequence[list[int]]], torch.Tensor],
    batch_size: int,
    width: int,
    progress: bool = False,
) -> torch.Tensor:
    """`fn` over batches of similar length (less padding); rows (N, width) in input order.

    The one batched scorer: offline prediction, evaluation and training validation use it.
    """
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = torch.empty(len(encoded), width)
    with tqdm(total=len(encoded), unit="review", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = fn([encoded[i] for i in chunk])
            bar.update(len(chunk))
    return out
