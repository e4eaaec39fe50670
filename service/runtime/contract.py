"""The contract between the serving runtime and a model: decode -> predict -> encode, plus info.

`Runtime` is generic over it, so the HTTP layer, batching, readiness and drain never see torch;
tests hand `create_app` a small fake that satisfies this protocol instead of patching classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from model.language import Reading

P = TypeVar("P")  # what one review becomes before the model call (e.g. token ids)
Out = TypeVar("Out")  # the model's output for one review (e.g. probabilities)

# (review, its size) pairs -> one attribution list each; the size only weighs the work.
Explain = Callable[[list[tuple[str, int]]], Sequence[list[dict[str, Any]]]]


@runtime_checkable
class ServedModel(Protocol[P, Out]):
    model_id: str

    def decode(self, text: str) -> P:
        """One review -> the model's input for it (runs in the request handler)."""
        ...

    def size_of(self, payload: P) -> int:
        """Cost of a payload (tokens): batches group similar sizes; explain limits use it."""
        ...

    def predict(self, batch: list[P]) -> Sequence[Out]:
        """ONE model call over a batch (runs on the inference thread), in order."""
        ...

    def encode(self, output: Out) -> dict[str, Any]:
        """One output -> its JSON object in the response."""
        ...

    def info(self, explanations: bool) -> dict[str, Any]:
        """What GET /model shows."""
        ...

    def metric_labels(self) -> dict[str, str]:
        """Labels of the `model` info metric."""
        ...


@runtime_checkable
class Explainable(Protocol):
    """A served model that can also build token attributions (on its own thread and copy)."""

    def explainer(self, max_tokens: int) -> Explain | None:
        """A function from reviews to one attribution list each, or None if unavailable."""
        ...


@runtime_checkable
class Reads(Protocol):
    """A served model that says, per decoded text, whether it can read it (language and
    readability, judged in `decode`); the runtime then applies UNSUPPORTED_TEXT."""

    def reading(self, payload: Any) -> Reading:
        """What `decode` found out about the text behind `payload`."""
        ...


@runtime_checkable
class ThreadBound(Protocol):
    """A served model that configures each thread it runs on (e.g. torch's thread count)."""

    def setup_thread(self) -> None:
        """Called on the event loop's thread at load, and first on each batcher's thread."""
        ...


@runtime_checkable
class SentenceScoring(Protocol):
    """A served model that can also score a review sentence by sentence: the runtime splits
    (on the request's decode path), decodes each sentence, scores them in the same batches as
    everything else, and hands the outputs back to `summarise`."""

    def split(self, text: str) -> list[tuple[int, int]]:
        """The sentences of `text` as (start, end): text[start:end] is each one."""
        ...

    def decode_sentence(self, sentence: str) -> Any:
        """One sentence -> the model's input (a payload, as `decode` makes), exactly as if
        it were sent alone."""
        ...

    def summarise(self, spans: list[tuple[int, int]], outputs: Sequence[Any]) -> dict[str, Any]:
        """The fields a prediction gains: `sentences` (one object per span) and `mixed`."""
        ...
