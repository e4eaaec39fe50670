"""Prometheus metrics, one registry per app (so tests can build many apps in one process).

With several workers (PROMETHEUS_MULTIPROC_DIR set by the supervisor before this is imported),
every value lives in a memory-mapped file per worker and /metrics, whichever worker answers,
aggregates all of them: counters and histograms add up, gauges say how they combine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from model.language import Reading
from service.config import MULTIPROC_ENV

# The *_created series double the output and no dashboard here reads them.
disable_created_metrics()

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Confidence is the top probability: >= 0.5 with two labels, finer near 1 where most answers are.
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
# Tokens the model read (after truncation, so the shipped model's 400 caps it).
TOKEN_BUCKETS = (5, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 1000)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Languages named on /metrics (the model's own, "und" for none found, and those most often sent
# to an English service); any other is counted as "other", so a client cannot grow the series.
METRIC_LANGUAGES = frozenset((
    "en", "und", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "pl", "cs", "tr", "ru",
    "uk", "el", "ar", "he", "fa", "hi", "id", "vi", "th", "zh", "ja", "ko",
))
# What became of a text: read and scored, or unreadable and, per UNSUPPORTED_TEXT, flagged
# (label withheld), refused, or scored anyway.
OUTCOMES = {"flag": "flagged", "refuse": "refused", "score": "scored_unreadable"}


class Metrics:
    """Everything /metrics shows; also the batcher's observer."""

    def __init__(self, namespace: str = "sentiment") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir is not None:
            # prometheus_client picks its value storage when first imported: if that happened
            # before the supervisor set the directory, values would stay in this process.
            values.ValueClass = values.get_value_class()
        self._depth: Callable[[], float] | None = None
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            namespace=namespace,
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response end.",
            ["route"],
            namespace=namespace,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled now.",
            namespace=namespace,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "queue_wait_seconds",
            "Time a review waited in the queue before its model call.",
            namespace=namespace,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.inference = Histogram(
            "inference_seconds",
            "Duration of one model call (one batch).",
            namespace=namespace,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "batch_size",
            "Reviews per model call.",
            namespace=namespace,
            registry=r,
            buckets=BATCH_BUCKETS,
        )
        self.batch_failures = Counter(
            "batch_failures",
            "Model calls that raised.",
            namespace=namespace,
            registry=r,
        )
        self.queue_depth = Gauge(
            "queue_depth",
            "Reviews waiting for the model.",
            namespace=namespace,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "ready",
            "1 when the model is loaded and warm (in every worker), else 0.",
            namespace=namespace,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.model = Info("model", "The checkpoint being served.", namespace=namespace, registry=r)
        # What the model answers, for drift: share of each label, confidence, input length.
        self.predictions = Counter(
            "predictions",
            "Texts scored, by model id and predicted label.",
            ["model", "label"],
            namespace=namespace,
            registry=r,
        )
        self.confidence = Histogram(
            "prediction_confidence",
            "Probability of the predicted label, by model id and label.",
            ["model", "label"],
            namespace=namespace,
            registry=r,
            buckets=CONFIDENCE_BUCKETS,
        )
        self.input_tokens = Histogram(
            "input_tokens",
            "Tokens the model read per text (after truncation), by model id.",
            ["model"],
            namespace=namespace,
            registry=r,
            buckets=TOKEN_BUCKETS,
        )
        self.texts_read = Counter(
            "texts_read",
            "Texts by detected language (a fixed set, else `other`) and outcome: `scored`, or "
            "for a text the model cannot read `flagged`, `refused` or `scored_unreadable` "
            "(UNSUPPORTED_TEXT).",
            ["language", "outcome"],
            namespace=namespace,
            registry=r,
        )
        # Sentence-level answers (`sentences: true`): what each sentence was called, and how
        # many reviews were mixed among those answered sentence by sentence.
        self.sentences = Counter(
            "sentences",
            "Sentences scored (requests with sentences=true), by model id and predicted label.",
            ["model", "label"],
            namespace=namespace,
            registry=r,
        )
        self.sentence_documents = Counter(
            "sentence_documents",
            "Texts answered sentence by sentence, by model id and `mixed` (true, false, or "
            "none for a model without both polar labels).",
            ["model", "mixed"],
            namespace=namespace,
            registry=r,
        )
        # Answers the protocol layer writes itself (service/server/http_guard.py): they never reach the
        # app, so http_requests does not see them. "none" = closed without an answer.
        self.protocol_refusals = Counter(
            "protocol_refusals",
            "Requests or connections refused below the app, by status and error type.",
            ["status", "type"],
            namespace=namespace,
            registry=r,
        )
        # Labelled children by (metric, labels): `.labels()` is the slow part of recording.
        self._label_children: dict[tuple[Any, ...], Any] = {}

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        if self.multiprocess_dir is None:
            self.queue_depth.set_function(depth)
        else:  # a function is read only by its own process: write samples instead
            self._depth = depth

    def _sample_depth(self) -> None:
        if self._depth is not None:
            self.queue_depth.set(self._depth())

    def set_model(self, info: dict[str, str]) -> None:
        self.model.info(info)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route).observe(seconds)
        self._sample_depth()

    def observe_refusal(self, status: int | None, type: str) -> None:
        self.protocol_refusals.labels("none" if status is None else str(status), type).inc()

    def observe_predictions(
        self, model: str, labels: Sequence[str], confidences: Sequence[float], tokens: Sequence[int]
    ) -> None:
        """One scored request: each text's label, confidence and length in tokens."""
        length = self._child(self.input_tokens, model)
        for label, confidence, n in zip(labels, confidences, tokens, strict=True):
            self._child(self.predictions, model, label).inc()
            self._child(self.confidence, model, label).observe(confidence)
            length.observe(n)

    def observe_sentences(self, model: str, predictions: Sequence[dict[str, Any]]) -> None:
        """The sentences and `mixed` of answers that show them."""
        for prediction in predictions:
            mixed = prediction.get("mixed")
            self._child(self.sentence_documents, model, "none" if mixed is None else str(mixed).lower()).inc()
            for sentence in prediction.get("sentences", ()):
                self._child(self.sentences, model, sentence["label"]).inc()

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per combination (the lookup is the slow part)."""
        key = (id(metric), *labels)
        child = self._label_children.get(key)
        if child is None:
            child = self._label_children[key] = metric.labels(*labels)
        return child

    def observe_readings(self, readings: Sequence[Reading], policy: str) -> None:
        """Each text's detected language and what became of it under `policy`."""
        for reading in readings:
            language = reading.language if reading.language in METRIC_LANGUAGES else "other"
            outcome = "scored" if reading.readable else OUTCOMES[policy]
            self._child(self.texts_read, language, outcome).inc()

    # BatchObserver
    def observe_batch(self, size: int, queue_waits: Sequence[float]) -> None:
        for wait in queue_waits:
            self.queue_wait.observe(wait)
        self._sample_depth()

    def observe_call(self, size: int, seconds: float, ok: bool) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)
        if not ok:
            self.batch_failures.inc()

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)
        # The model info is not stored in the files; every worker serves the same checkpoint.
        registry.register(_Only(self.model))
        return generate_latest(registry)


class _Only:
    """A collector exposing one metric of another registry."""

    def __init__(self, metric: Info) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Metric]:
        return self.metric.collect()
