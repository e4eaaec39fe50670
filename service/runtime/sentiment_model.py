"""The shipped model behind the serving contract (service/runtime/contract.py: decode -> predict -> encode):

* `decode` turns a review into token ids with the checkpoint's own text pipeline (in the
  request path, so tokenising overlaps with the model running on the worker thread);
* `predict` scores a list of id lists in ONE model call (on the worker thread);
* `encode` turns one row of probabilities into the response object.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model.checkpoint import Checkpoint, load_checkpoint
from model.language import Reading, TextReader
from model.predictor import Backend, Predictor, prediction_row, sentence_summary
from model.rnn import parameter_summary
from model.sentences import split_sentences
from service.config import Settings
from service.runtime.contract import Explain, ServedModel

logger = logging.getLogger("service.inference")

ExplainFn = Callable[..., Sequence[Sequence[Any]]]
# What create_app serves: a model that keeps the contract, a loaded checkpoint, or None (load
# MODEL_DIR at start-up).
ModelSource = ServedModel[Any, Any] | Checkpoint | None


def model_loader(settings: Settings, source: ModelSource) -> Callable[[], ServedModel[Any, Any]]:
    """What the runtime calls at start-up to get the model to serve."""
    if source is not None and not isinstance(source, Checkpoint):
        return lambda: source
    return lambda: load_sentiment_model(settings, source)


def load_sentiment_model(settings: Settings, checkpoint: Checkpoint | None) -> SentimentModel:
    if checkpoint is None:
        checkpoint = load_checkpoint(settings.model_dir)
    return SentimentModel(checkpoint, settings.inference_backend, settings.torch_threads)


def configure_torch(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    # One model call at a time runs here; inter-op parallelism would only add threads.
    # RuntimeError: already set (or used) in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class ReadIds(list[int]):
    """Token ids that also carry what the reader made of their text: a list still, so the
    batcher, the predictor and every caller of `decode` see the ids they always saw."""

    __slots__ = ("reading",)
    reading: Reading


class SentimentModel:
    """A `ServedModel[list[int], list[float]]` (and `Explainable`) over a loaded checkpoint."""

    def __init__(self, checkpoint: Checkpoint, backend: Backend = "onnx", threads: int = 0) -> None:
        self.checkpoint = checkpoint
        self.threads = threads  # torch threads per model thread (0: torch's default)
        self.predictor = Predictor(checkpoint, backend=backend)
        self.labels = list(checkpoint.labels)
        self.model_id = checkpoint.model_id
        self.reader = TextReader(checkpoint.pipeline)
        if checkpoint.pipeline.config.spelling:
            checkpoint.pipeline.vocab.prepare_spelling()

    def setup_thread(self) -> None:
        configure_torch(self.threads)

    def decode(self, text: str) -> ReadIds:
        """The ids the model reads; [] when the pipeline finds no token in `text`. Only the
        kept ends of a long review are tokenized (`tokenize_kept`). Whether the model can read
        the text is judged here too, from the same tokens (`reading`)."""
        ids, reading = self.reader.encode(text)
        payload = ReadIds(ids)
        payload.reading = reading
        return payload

    def reading(self, payload: ReadIds) -> Reading:
        return payload.reading

    def size_of(self, payload: list[int]) -> int:
        return len(payload)

    def predict(self, batch: list[list[int]]) -> list[list[float]]:
        """Scored in calls over similar lengths (`model.predictor.length_groups`), so a
        review's sentences scored beside it are not padded to its length."""
        return self.predictor.predict_ids(batch).tolist()

    def encode(self, probabilities: list[float]) -> dict[str, Any]:
        return prediction_row(self.labels, probabilities)

    # SentenceScoring
    def split(self, text: str) -> list[tuple[int, int]]:
        return split_sentences(text)

    def decode_sentence(self, sentence: str) -> list[int]:
        """The ids `Predictor.predict_texts([sentence])` would score: no reading (the review's
        language was judged whole), and [<unk>] for a sentence with no token, as offline."""
        return self.checkpoint.pipeline.encode(sentence)

    def summarise(self, spans: list[tuple[int, int]], outputs: Sequence[list[float]]) -> dict[str, Any]:
        return sentence_summary(self.labels, spans, outputs)

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
            "backend": self.predictor.backend,
            "explanations": explanations,
        }

    def explainer(self, max_tokens: int) -> Explain | None:
        explain_fn = load_explain_fn()
        if explain_fn is None:
            return None
        return Explainer(self.predictor, explain_fn, max_tokens).explain

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
    """Token attributions from the served predictor itself: its network is only read (in eval
    mode, gradients taken w.r.t. the inputs, so no parameter is written) and its ONNX sessions
    are thread-safe, so the explain thread shares it with the inference thread instead of
    holding a second copy of the weights, vocabulary and spelling index (~60 MB a worker)."""

    def __init__(self, predictor: Predictor, explain_fn: ExplainFn, max_tokens: int) -> None:
        self.predictor = predictor
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
