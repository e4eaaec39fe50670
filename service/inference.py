"""The shipped model behind the serving contract (service/served.py: decode -> predict -> encode):

* `decode` turns a review into token ids with the checkpoint's own text pipeline (in the
  request path, so tokenising overlaps with the model running on the worker thread);
* `predict` scores a list of id lists in ONE model call (on the worker thread);
* `encode` turns one row of probabilities into the response object.
"""

from __future__ import annotations

import copy
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from model.checkpoint import Checkpoint
from model.predictor import Predictor
from model.rnn import parameter_summary
from model.text import tokenize_kept
from service.served import Explain

logger = logging.getLogger("service.inference")

ExplainFn = Callable[..., Sequence[Sequence[Any]]]


# Batches up to this size may run the two directions of a bidirectional layer on two threads
# (model/rnn.py): a lone review then takes about half the wall time, when a core is free. Big
# batches keep every core busy anyway.
PARALLEL_DIRECTIONS_MAX_BATCH = 4


class DirectionChooser:
    """Whether small batches run the two directions in parallel, decided by measurement: the
    second thread only helps while a core is free (on a 2-core machine saturated by other work
    the hand-off cost more than it saved: 3.5 against 3.2 ms for one review, where an idle core
    gave 2.0 against 2.8). Each mode's model time per token is smoothed; the cheaper one is
    used, and the other is tried every `explore_every` small batches to notice a change."""

    def __init__(self, explore_every: int = 16, smoothing: float = 0.2, warm_up: int = 4) -> None:
        self.explore_every = explore_every
        self.smoothing = smoothing
        self.warm_up = warm_up  # samples of each mode before the cheaper one is preferred
        self.cost: dict[bool, float] = {}  # mode -> smoothed seconds per token
        self.samples = {False: 0, True: 0}
        self.calls = 0

    def pick(self) -> bool:
        self.calls += 1
        if min(self.samples.values()) < self.warm_up:
            return self.calls % 2 == 0  # alternate until both modes are measured
        best = self.cost[True] < self.cost[False]
        return (not best) if self.calls % self.explore_every == 0 else best

    def record(self, parallel: bool, seconds: float, tokens: int) -> None:
        sample = seconds / max(1, tokens)
        previous = self.cost.get(parallel)
        self.cost[parallel] = (
            sample if previous is None else (1 - self.smoothing) * previous + self.smoothing * sample
        )
        self.samples[parallel] += 1


class SentimentModel:
    """A `ServedModel[list[int], list[float]]` (and `Explainable`) over a loaded checkpoint."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.predictor = Predictor(checkpoint)
        self.labels = list(checkpoint.labels)
        self.model_id = checkpoint.model_id
        self.directions = DirectionChooser()

    def decode(self, text: str) -> list[int]:
        """The ids the model reads; [] when the pipeline finds no token in `text`. Only the
        kept ends of a long review are tokenized (`tokenize_kept`)."""
        pipeline = self.checkpoint.pipeline
        tokens = tokenize_kept(text, pipeline.config)
        return pipeline.encode_tokens(tokens) if tokens else []

    def size_of(self, payload: list[int]) -> int:
        return len(payload)

    def predict(self, batch: list[list[int]]) -> list[list[float]]:
        model = self.predictor.model
        small = model.config.bidirectional and len(batch) <= PARALLEL_DIRECTIONS_MAX_BATCH
        if not small:
            return self.predictor.predict_ids(batch).tolist()
        # One inference thread calls this, so switching the model's mode per call is safe.
        parallel = self.directions.pick()
        model.parallel_directions_max_batch = PARALLEL_DIRECTIONS_MAX_BATCH if parallel else 0
        started = time.perf_counter()
        rows = self.predictor.predict_ids(batch).tolist()
        self.directions.record(parallel, time.perf_counter() - started, sum(map(len, batch)))
        return rows

    def encode(self, probabilities: list[float]) -> dict[str, Any]:
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return {
            "label": self.labels[best],
            "confidence": probabilities[best],
            "probabilities": dict(zip(self.labels, probabilities, strict=True)),
        }

    @property
    def max_tokens(self) -> int:
        return int(self.checkpoint.pipeline.config.max_tokens)

    def info(self, explanations: bool) -> dict[str, Any]:
        ckpt = self.checkpoint
        layers = dict(parameter_summary(ckpt.model))
        return {
            "id": self.model_id,
            "architecture": ckpt.model.config.to_dict(),
            "parameters": sum(layers.values()),
            "parameters_by_layer": layers,
            "vocab_size": len(ckpt.pipeline.vocab),
            "labels": self.labels,
            "max_tokens": self.max_tokens,
            "temperature": float(ckpt.temperature),
            "metrics": ckpt.metrics,
            "sha256": ckpt.sha256,
            "explanations": explanations,
        }

    def explainer(self, max_tokens: int) -> Explain | None:
        explain_fn = load_explain_fn()
        if explain_fn is None:
            return None
        return Explainer(self.checkpoint, explain_fn, max_tokens).explain

    def metric_labels(self) -> dict[str, str]:
        config = self.checkpoint.model.config
        return {
            "id": self.model_id,
            "sha256": self.checkpoint.sha256,
            "cell": config.cell,
            "labels": ",".join(self.labels),
        }


def load_explain_fn() -> ExplainFn | None:
    """`model.explain.explain_batch` if that module exists in this build, else None."""
    try:
        module = importlib.import_module("model.explain")
    except ModuleNotFoundError as exc:
        if exc.name == "model.explain":
            return None
        raise  # the module exists but one of its imports is missing: a real error
    fn = getattr(module, "explain_batch", None)
    return fn if callable(fn) else None


class Explainer:
    """Token attributions on a private copy of the model, so gradient work never touches (or
    waits for) the model that serves plain predictions."""

    def __init__(self, checkpoint: Checkpoint, explain_fn: ExplainFn, max_tokens: int) -> None:
        self.predictor = Predictor(copy.deepcopy(checkpoint))
        self.explain_fn = explain_fn
        self.max_tokens = max_tokens

    def explain(self, items: list[tuple[str, int]]) -> list[list[dict[str, Any]]]:
        """Attributions for (text, its token count) pairs; the count only sizes the work."""
        texts = [text for text, _ in items]
        rows = self.explain_fn(self.predictor, texts, max_tokens=self.max_tokens)
        return [
            [
                {
                    "token": str(a.token),
                    "start": int(a.start),
                    "end": int(a.end),
                    "score": float(a.score),
                }
                for a in row
            ]
            for row in rows
        ]
