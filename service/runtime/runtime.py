"""The serving runtime: loads the model, warms it up, owns the batchers, reports readiness and
drains on shutdown. Routes call `predict`. Generic over the served model (service/runtime/contract.py);
the shipped one is service/runtime/sentiment_model.py's `SentimentModel`."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from model.language import UNSUPPORTED_TEXT, Reading, present
from model.readable import NO_TOKEN_MESSAGE, NO_TOKEN_TYPE, unreadable
from service.config import Settings
from service.errors import ApiError, validation_error
from service.runtime.batching import (
    Batcher,
    BatcherClosed,
    BatcherConfig,
    DeadlineExceeded,
    Job,
    QueueFull,
)
from service.runtime.contract import (
    Explainable,
    Reads,
    SentenceScoring,
    ServedModel,
    ThreadBound,
)
from service.runtime.metrics import Metrics
from service.schemas import PredictRequest, build_predict_request

logger = logging.getLogger("service.runtime")

Status = Literal["loading", "ok", "draining", "failed"]
P = TypeVar("P")
Out = TypeVar("Out")
T = TypeVar("T")
R = TypeVar("R")
# Builds the model to serve; called once, off the event loop, when the runtime starts.
LoadModel = Callable[[], ServedModel[Any, Any]]

class SharedReadiness(Protocol):
    """This worker's place among several (service/server/workers.py's `WorkerSlot`): it
    reports its own status and reads whether every worker is ready."""

    replacement: bool  # started in place of a dead worker

    def report(self, status: str) -> None: ...

    def all_ready(self) -> bool: ...

    def describe(self) -> str: ...


WARM_UP_TEXTS = ("A fine film.", "word " * 1000)
# Above this many characters in one request, tokenizing moves off the event loop: below it
# the thread hop would cost about as much as the work it moves (one typical review is ~1,300).
DECODE_INLINE_CHARS = 20_000
# Splitting into sentences and tokenizing each costs about three times what reading the
# review alone does, so such a request leaves the event loop at a third of the size.
SENTENCE_DECODE_COST = 3
Span = tuple[int, int]


@dataclass
class Decoded(Generic[P]):
    """A request's model inputs: one payload per text and, with sentences, each text's
    sentence spans and one payload per sentence (all texts' sentences, in order)."""

    payloads: list[P]
    spans: list[list[Span]] | None = None
    sentence_payloads: list[P] = field(default_factory=list)


class TooManySentences(Exception):
    """The texts up to `index` hold more than `limit` sentences."""

    def __init__(self, limit: int, index: int) -> None:
        super().__init__(f"more than {limit} sentences")
        self.limit, self.index = limit, index


def too_many_sentences(exc: TooManySentences, single: bool) -> ApiError:
    """The 422 of a request with more sentences than it may have."""
    limit = exc.limit
    message = f"more than {limit} sentences in this request; at most {limit} with sentences=true"
    return validation_error([{"loc": item_loc(exc.index, single), "msg": message,
                              "type": "too_many_sentences"}])


def item_loc(index: int, single: bool) -> tuple[str | int, ...]:
    """Where a request's `index`-th text is: `text` alone, or an item of `texts`."""
    return ("text",) if single else ("texts", index)


def check_readable(sizes: list[int], single: bool) -> None:
    """422 for a text in which the model's own pipeline finds no token (a zero-width space,
    control characters, bare markup): there is nothing to score, as with a blank text.
    `sizes`: each text's size as the served model measures it (model/readable.py's rule)."""
    positions = unreadable(sizes)
    if not positions:
        return
    errors = [{"loc": item_loc(index, single), "msg": NO_TOKEN_MESSAGE, "type": NO_TOKEN_TYPE}
              for index in positions]
    raise validation_error(errors, total=len(errors))


def unsupported_text_error(reading: Reading) -> ApiError:
    """The 422 of a single text the model cannot read, under UNSUPPORTED_TEXT=refuse."""
    message = reading.message()
    return ApiError(
        422,
        f"text: {message}",
        type=UNSUPPORTED_TEXT,
        details=[{"field": "text", "message": message, "type": reading.reason or UNSUPPORTED_TEXT}],
    )


def add_sentences(
    predictions: list[dict[str, Any]],
    sentencer: SentenceScoring,
    spans: list[list[Span]],
    outputs: Sequence[Any],
) -> None:
    """Give each prediction its sentences and `mixed`, from the sentence `outputs` (all texts'
    sentences, in order)."""
    at = 0
    for prediction, text_spans in zip(predictions, spans, strict=True):
        prediction.update(sentencer.summarise(text_spans, outputs[at : at + len(text_spans)]))
        at += len(text_spans)


class Runtime(Generic[P, Out]):
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        load_model: LoadModel,
        slot: SharedReadiness | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slot = slot  # one of several workers: readiness is everyone's
        self._status: Status
        self.failure: str | None = None
        self.model: ServedModel[P, Out] | None = None
        self.batcher: Batcher[P, Out] | None = None
        self.explain_batcher: Batcher[tuple[str, int], list[dict[str, Any]]] | None = None
        self.reads_text = False  # whether the model judges what it can read (service/runtime/contract.py)
        self.scores_sentences = False  # whether it can score sentence by sentence (idem)
        self.request_model = build_predict_request(
            settings.max_chars, settings.max_batch, settings.max_explain_texts
        )
        self._load_model = load_model
        # One thread tokenizes large requests, in arrival order: under the GIL more threads
        # would not tokenize faster, only let abandoned work pile up beside live work.
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._start_task: asyncio.Task[None] | None = None
        self.status = "loading"

    @property
    def status(self) -> Status:
        return self._status

    @status.setter
    def status(self, value: Status) -> None:
        self._status = value
        if self.slot is not None:
            self.slot.report(value)

    def ready_everywhere(self) -> bool:
        """This worker is ready, and so is every other one (always true for one process)."""
        return self.status == "ok" and (self.slot is None or self.slot.all_ready())

    # -- lifecycle ---------------------------------------------------------------------------

    def launch(self) -> None:
        """Start loading in the background: the server answers /health/live (and 503 on
        /health) while the model loads and warms up."""
        self._start_task = asyncio.create_task(self.start(), name="runtime-start")

    async def wait_started(self) -> None:
        if self._start_task is not None:
            await asyncio.shield(self._start_task)

    async def start(self) -> None:
        began = time.monotonic()
        try:
            await self._load()
            await self._warm_up()
        except Exception as exc:
            self.status, self.failure = "failed", str(exc)
            logger.critical("start-up failed: %s", exc, exc_info=exc)
            return
        if self.status == "loading":
            self.status = "ok"
            self.metrics.ready.set(1)
        assert self.model is not None
        logger.info(
            "model ready",
            extra={"model": self.model.model_id, "startup_s": round(time.monotonic() - began, 3)},
        )

    async def _load(self) -> None:
        settings = self.settings
        model: ServedModel[P, Out] = await asyncio.to_thread(self._load_model)
        # The model's own set-up of each thread it runs on (torch's thread count is per
        # thread under OpenMP): here, and on the batchers' threads.
        setup_thread = model.setup_thread if isinstance(model, ThreadBound) else None
        if setup_thread is not None:
            setup_thread()
        # The inference thread drops and retakes the GIL around every torch op; with the
        # default 5 ms interval each retake can wait behind the event loop's Python work, and
        # the model thread idles. Measured at c=64 on 2 cores: 5 ms ~735 req/s, 1 ms ~840,
        # 0.1 ms ~970 (the default here).
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
        batcher: Batcher[P, Out] = Batcher(
            model.predict,
            BatcherConfig(
                max_batch_size=settings.max_batch_size,
                max_wait_s=settings.max_wait_ms / 1000,
                max_queue=settings.max_queue,
                name="inference",
                inline_max_s=settings.inline_max_ms / 1000,
            ),
            size_of=model.size_of,
            observer=self.metrics,
            initializer=setup_thread,
        )
        batcher.start()
        self.model, self.batcher = model, batcher
        # Asked once: isinstance against a Protocol costs ~7 µs, too much for every request.
        self.reads_text = isinstance(model, Reads)
        self.scores_sentences = isinstance(model, SentenceScoring)
        self.metrics.track_queue_depth(lambda: batcher.depth)
        self.metrics.set_model(model.metric_labels())
        if isinstance(model, Explainable):
            explainer = await asyncio.to_thread(model.explainer, settings.max_explain_tokens)
        else:
            explainer = None
        if explainer is not None:
            # Its own thread and a small queue: explanations never join (or delay) a plain batch.
            self.explain_batcher = Batcher(
                explainer,
                BatcherConfig(
                    max_batch_size=settings.max_explain_texts,
                    max_wait_s=0,
                    max_queue=4 * settings.max_explain_texts,
                    name="explain",
                ),
                size_of=lambda item: item[1],  # its tokens: the work grows with them
                initializer=setup_thread,
            )
            self.explain_batcher.start()

    async def _warm_up(self) -> None:
        assert self.model is not None and self.batcher is not None
        for text in WARM_UP_TEXTS:  # a short and a full-length review: every code path runs once
            await self.batcher.run([self.model.decode(text)], time.monotonic() + 120)
        if self.explain_batcher is not None:
            # One short explanation, so the lane's admission has a measured cost from its first
            # request (unmeasured, it would admit a whole burst that cannot meet its deadline).
            text = WARM_UP_TEXTS[0]
            sized = (text, self.model.size_of(self.model.decode(text)))
            await self.explain_batcher.run([sized], time.monotonic() + 120)

    def begin_drain(self) -> None:
        """SIGTERM: report "draining" to probes while in-flight and queued work completes."""
        if self.status in ("loading", "ok"):
            self.status = "draining"
            self.metrics.ready.set(0)
            logger.info("draining: readiness now reports 503")

    async def stop(self) -> None:
        self.begin_drain()
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        timeout = self.settings.shutdown_timeout_s
        for batcher in (self.batcher, self.explain_batcher):
            if batcher is not None:
                await batcher.stop(timeout)
        self._decoder.shutdown(wait=False, cancel_futures=True)

    # -- serving -----------------------------------------------------------------------------

    def serving_model(self) -> ServedModel[P, Out]:
        """The model, if it may serve now (also while draining); else 503."""
        model, batcher = self.model, self.batcher
        if self.status in ("loading", "failed") or model is None or batcher is None:
            raise ApiError(
                503,
                f"Model not ready ({self.status})",
                type="not_ready",
                headers={"Retry-After": "1"},
            )
        return model

    async def predict(
        self, request: PredictRequest, time_left: float, alone: bool = False
    ) -> tuple[dict[str, Any], int]:
        """Score the request's texts: (response body, size of the batch they were scored in).
        `alone`: no other client is connected to this process, so a lone review may be scored
        at once on the event loop (see service/runtime/batching.py) instead of queued."""
        model = self.serving_model()
        assert self.batcher is not None
        texts = request.items
        single = request.texts is None
        # One deadline for all the work: tokenizing counts, as the queue and the model do.
        deadline = time.monotonic() + time_left
        if time_left <= 0:
            raise self._timeout()
        sentencer = self._sentencer(model) if request.sentences else None
        try:
            decoded = await self._decode(model, texts, deadline, sentencer)
        except TooManySentences as exc:
            raise too_many_sentences(exc, single) from None
        payloads = decoded.payloads
        sizes = [model.size_of(payload) for payload in payloads]
        check_readable(sizes, single)
        policy = self.settings.unsupported_text
        readings = [cast(Reads, model).reading(p) for p in payloads] if self.reads_text else None
        if readings is not None and single and policy == "refuse" and not readings[0].readable:
            self.metrics.observe_readings(readings, policy)
            raise unsupported_text_error(readings[0])
        if request.explain:
            self._check_explainable(sizes, single)
        if time.monotonic() >= deadline:
            raise self._timeout()
        # Both lanes admit (or refuse) before either works: a refused explanation costs no
        # scoring, and a refused scoring no explanation.
        explaining = None
        if request.explain:
            assert self.explain_batcher is not None
            sized = list(zip(texts, sizes, strict=True))
            explaining = self._submit(self.explain_batcher, sized, deadline)
        try:
            inline_ok = alone and explaining is None
            # Sentences are more items of the same queue: admitted, batched and timed with
            # the texts, all or none.
            items = payloads + decoded.sentence_payloads
            scoring = self._submit(self.batcher, items, deadline, inline_ok)
            outputs, batch_size = await self._wait(self.batcher, scoring, deadline)
        except BaseException:
            if explaining is not None:  # nobody will read it: leave the lane to others
                Batcher.cancel(explaining)
            raise
        predictions = [model.encode(output) for output in outputs[: len(payloads)]]
        if sentencer is not None and decoded.spans is not None:
            add_sentences(predictions, sentencer, decoded.spans, outputs[len(payloads) :])
        # Only labels that are shown count: withheld ones would drift the label metrics.
        shown: Sequence[int] = range(len(predictions))
        if readings is not None and policy != "score":
            shown = [i for i in shown if readings[i].readable]
        self.metrics.observe_predictions(
            model.model_id,
            [predictions[i]["label"] for i in shown],
            [predictions[i]["confidence"] for i in shown],
            [sizes[i] for i in shown],
        )
        if readings is not None:
            self.metrics.observe_readings(readings, policy)
        if sentencer is not None:
            self.metrics.observe_sentences(model.model_id, [predictions[i] for i in shown])
        if explaining is not None:
            assert self.explain_batcher is not None
            explanations, _ = await self._wait(self.explain_batcher, explaining, deadline)
            for prediction, explanation in zip(predictions, explanations, strict=True):
                prediction["explanation"] = explanation
        if readings is not None:
            # Every text was scored as it always was; only what is shown of an unreadable one
            # depends on the policy, so a readable text's answer cannot change.
            predictions = [
                present(prediction, reading, policy)
                for prediction, reading in zip(predictions, readings, strict=True)
            ]
        return {"model": model.model_id, "predictions": predictions}, batch_size

    def _sentencer(self, model: ServedModel[P, Out]) -> SentenceScoring:
        if not self.scores_sentences:
            raise ApiError(
                501, "Sentence scoring is not available for this model", type="not_implemented"
            )
        return cast(SentenceScoring, model)

    async def _decode(
        self,
        model: ServedModel[P, Out],
        texts: list[str],
        deadline: float,
        sentencer: SentenceScoring | None = None,
    ) -> Decoded[P]:
        """The model input per text (and per sentence); a large request is tokenized on the
        decode thread, so that the event loop keeps answering (probes above all) meanwhile. At
        the deadline the request gets its 504 at once, and the thread drops it before its next
        text: an abandoned request costs at most one more text (~10 ms at MAX_CHARS, the worst
        shapes measured)."""
        cost = sum(map(len, texts)) * (1 if sentencer is None else SENTENCE_DECODE_COST)
        if cost <= DECODE_INLINE_CHARS:
            return self._decode_all(model, texts, sentencer, lambda: None)

        def in_time() -> None:
            if time.monotonic() >= deadline:
                raise DeadlineExceeded

        def decode_all() -> Decoded[P]:
            return self._decode_all(model, texts, sentencer, in_time)

        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._decoder, decode_all)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await work
        except (TimeoutError, DeadlineExceeded):
            raise self._timeout() from None

    def _decode_all(
        self,
        model: ServedModel[P, Out],
        texts: list[str],
        sentencer: SentenceScoring | None,
        in_time: Callable[[], None],
    ) -> Decoded[P]:
        """`_decode`'s work; `in_time` is called before each text (and raises when late)."""
        # Split first: a request over its sentence limit is refused before any tokenizing.
        spans = None if sentencer is None else self._split(sentencer, texts, in_time)
        payloads = []
        for text in texts:
            in_time()
            payloads.append(model.decode(text))
        if sentencer is None or spans is None:
            return Decoded(payloads)
        sentence_payloads = []
        for text, text_spans in zip(texts, spans, strict=True):
            in_time()
            sentence_payloads += [sentencer.decode_sentence(text[a:b]) for a, b in text_spans]
        return Decoded(payloads, spans, sentence_payloads)

    def _split(
        self, sentencer: SentenceScoring, texts: list[str], in_time: Callable[[], None]
    ) -> list[list[Span]]:
        """Each text's sentence spans, refused (422) as soon as they pass the request's limit:
        before any text is tokenized, so a text of tiny sentences costs one linear split."""
        # Every sentence is one more item in the queue, which holds MAX_QUEUE: a request that
        # could never be queued is refused as too large, not told to retry (429).
        limit = min(self.settings.max_sentences, self.settings.max_queue - len(texts))
        spans, count = [], 0
        for index, text in enumerate(texts):
            in_time()
            spans.append(sentencer.split(text))
            count += len(spans[-1])
            if count > limit:
                raise TooManySentences(max(0, limit), index)
        return spans

    def _check_explainable(self, sizes: list[int], single: bool) -> None:
        settings = self.settings
        if self.explain_batcher is None:
            raise ApiError(
                501, "Explanations are not available in this build", type="not_implemented"
            )
        if len(sizes) > settings.max_explain_texts:
            raise ApiError(
                422,
                f"texts: at most {settings.max_explain_texts} texts can be explained per request",
                type="validation_error",
                details=[
                    {
                        "field": "texts",
                        "type": "too_many_to_explain",
                        "message": f"at most {settings.max_explain_texts} with explain=true",
                    }
                ],
            )
        for index, tokens in enumerate(sizes):
            if tokens > settings.max_explain_tokens:
                message = f"{tokens} tokens; at most {settings.max_explain_tokens} can be explained"
                raise validation_error([{"loc": item_loc(index, single), "msg": message,
                                         "type": "too_long_to_explain"}])

    def _submit(
        self, batcher: Batcher[T, R], payloads: list[T], deadline: float, inline_ok: bool = False
    ) -> list[Job[T, R]]:
        try:
            return batcher.submit(payloads, deadline, inline_ok)
        except QueueFull as exc:
            raise ApiError(
                429,
                "Too many requests in the queue; retry later",
                type="queue_full",
                headers={"Retry-After": str(int(exc.retry_after))},
            ) from None
        except BatcherClosed:
            raise self._closed() from None

    async def _wait(
        self, batcher: Batcher[T, R], jobs: list[Job[T, R]], deadline: float
    ) -> tuple[list[R], int]:
        try:
            return await batcher.wait(jobs, deadline)
        except BatcherClosed:
            raise self._closed() from None
        except DeadlineExceeded:
            raise self._timeout() from None

    def _closed(self) -> ApiError:
        return ApiError(503, "The server is shutting down", type="not_ready", headers={"Retry-After": "1"})

    def _timeout(self) -> ApiError:
        return ApiError(
            504, f"No answer within {self.settings.request_timeout_s:g}s", type="timeout"
        )

    def info(self) -> dict[str, Any]:
        return self.serving_model().info(explanations=self.explain_batcher is not None)
