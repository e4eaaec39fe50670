"""Request and response bodies. The request model carries the configured limits, so the
OpenAPI schema, the 422 messages and the settings always agree."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from model.readable import review_pattern

DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BATCH = 64

EXAMPLE_TEXT = "A moving, beautifully acted film. I loved every minute of it."
MIXED_EXAMPLE_TEXT = (
    "The battery died after two days and support never answered. Shame, the screen is lovely."
)
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "one": {"summary": "One review", "value": {"text": EXAMPLE_TEXT}},
    "batch": {
        "summary": "Several reviews (answers come back in the same order)",
        "value": {"texts": [EXAMPLE_TEXT, "Dull, predictable and far too long. Avoid."]},
    },
    "explain": {
        "summary": "One review with token attributions",
        "value": {"text": EXAMPLE_TEXT, "explain": True},
    },
    "sentences": {
        "summary": "One review sentence by sentence (with `mixed`)",
        "value": {"text": MIXED_EXAMPLE_TEXT, "sentences": True},
    },
}


# Whitespace as JSON Schema (ECMAScript) regexes define it, so that the published pattern and
# the check below agree exactly; str.isspace() would also count control characters.
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_NOT_SPACE = re.compile(f"[^{_SPACE}]")


def _not_blank(value: str) -> str:
    if _NOT_SPACE.search(value) is None:
        raise PydanticCustomError("blank_text", "Text must contain a non-whitespace character")
    return value


def _normalised_within(max_chars: int) -> Callable[[str], str]:
    """The same character limit after NFKC normalisation, which the pipeline applies to words:
    one character can become up to 18 ("\ufdfa"), so a text within the limit as sent could
    otherwise cost the pipeline many times its size."""

    def check(value: str) -> str:
        if not value.isascii() and len(unicodedata.normalize("NFKC", value)) > max_chars:
            raise PydanticCustomError(
                "string_too_long_normalised",
                "String should have at most {max_chars} characters after Unicode (NFKC) "
                "normalisation",
                {"max_chars": max_chars},
            )
        return value

    return check


def _review_field(max_chars: int) -> Any:
    """The limits of one review: 1..max_chars characters."""
    return Field(min_length=1, max_length=max_chars, json_schema_extra=_add_review_pattern)


def _add_review_pattern(schema: dict[str, Any]) -> None:
    schema["pattern"] = review_pattern()  # built with the schema (lazily), not at import


Review = Annotated[
    str,
    _review_field(DEFAULT_MAX_CHARS),
    AfterValidator(_not_blank),
    AfterValidator(_normalised_within(DEFAULT_MAX_CHARS)),
]


def _exactly_one_in_schema(schema: dict[str, Any]) -> None:
    """JSON Schema for "exactly one of text / texts" (null is not a value for either)."""
    for name in ("text", "texts"):
        field = schema["properties"][name]
        variants = [v for v in field.pop("anyOf", []) if v.get("type") != "null"]
        field.update(variants[0] if variants else {})
        field.pop("default", None)
    schema["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]
    schema["examples"] = [example["value"] for example in REQUEST_EXAMPLES.values()]


class PredictRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_in_schema)

    text: Review | None = Field(default=None, description="One review.")
    texts: list[Review] | None = Field(
        default=None, min_length=1, max_length=DEFAULT_MAX_BATCH, description="Several reviews."
    )
    explain: StrictBool = Field(default=False, description="Also return per-token attributions.")
    sentences: StrictBool = Field(
        default=False,
        description="Also score each sentence (`sentences`, with offsets) and say whether the "
        "review is `mixed`.",
    )

    @field_validator("text", "texts", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:  # absent is fine; an explicit null is a client bug worth naming
            raise PydanticCustomError("null_value", "Must not be null (leave the field out)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise PydanticCustomError("text_xor_texts", "Give exactly one of 'text' or 'texts'")
        return self

    @property
    def items(self) -> list[str]:
        if self.texts is not None:
            return self.texts
        assert self.text is not None
        return [self.text]


def _explain_limit_in_schema(max_explain_texts: int) -> Callable[[dict[str, Any]], None]:
    """JSON Schema for "with explain: true, at most max_explain_texts texts"."""

    def extra(schema: dict[str, Any]) -> None:
        _exactly_one_in_schema(schema)
        schema["anyOf"] = [
            {"properties": {"explain": {"const": False}}},
            {"properties": {"texts": {"maxItems": max_explain_texts}}},
        ]

    return extra


def build_predict_request(
    max_chars: int, max_batch: int, max_explain_texts: int | None = None
) -> type[PredictRequest]:
    """PredictRequest with the configured limits (`max_explain_texts` only in the schema: the
    runtime checks it, after whether explanations are available at all)."""
    review = Annotated[
        str,
        _review_field(max_chars),
        AfterValidator(_not_blank),
        AfterValidator(_normalised_within(max_chars)),
    ]
    limit = max_batch if max_explain_texts is None else max_explain_texts
    extra = _explain_limit_in_schema(limit) if limit < max_batch else _exactly_one_in_schema

    class ConfiguredPredictRequest(PredictRequest):
        # Same names as the base class: only the limits differ.
        model_config = ConfigDict(title="PredictRequest", json_schema_extra=extra)

        text: review | None = Field(default=None, description="One review.")
        texts: list[review] | None = Field(
            default=None, min_length=1, max_length=max_batch, description="Several reviews."
        )

    return ConfiguredPredictRequest


class TokenAttribution(BaseModel):
    token: str = Field(description="The token as the model saw it (normalised).")
    start: int = Field(ge=0, description="Character span in the submitted text.")
    end: int = Field(ge=0)
    score: float = Field(description="Contribution towards the predicted label.")


class SentencePrediction(BaseModel):
    """One sentence of a review, scored on its own."""

    start: int = Field(ge=0, description="Offset of the sentence's first character in the text "
                       "as sent (Unicode code points, as Python indexes a str).")
    end: int = Field(ge=0, description="Offset just past its last character: "
                     "text[start:end] is the sentence.")
    label: str = Field(examples=["negative"])
    confidence: float = Field(ge=0, le=1, examples=[0.84])
    probabilities: dict[str, float]


class ItemError(BaseModel):
    """A refusal of one text inside a batch (UNSUPPORTED_TEXT=refuse); the others are answered."""

    type: Literal["unsupported_text"] = Field(description="Why this text got no answer.")
    message: str


class Prediction(BaseModel):
    """One answer. For a text the model cannot read (`readable: false`: another language, or
    too few words it knows) the label, confidence and probabilities are null unless the server
    runs with UNSUPPORTED_TEXT=score; never null for a readable text."""

    label: str | None = Field(
        examples=["positive"], description="The predicted label; null when withheld (unreadable)."
    )
    confidence: float | None = Field(
        ge=0, le=1, description="Probability of `label`; null when withheld.", examples=[0.97]
    )
    probabilities: dict[str, float] | None = Field(
        description="Calibrated probability per label; they sum to 1. Null when withheld.",
        examples=[{"negative": 0.03, "positive": 0.97}],
    )
    explanation: list[TokenAttribution] | None = Field(
        default=None, description="Only when the request asked for `explain` (and a label is given)."
    )
    sentences: list[SentencePrediction] | None = Field(
        default=None,
        description="Only when the request asked for `sentences` (and a label is given): each "
        "sentence of the whole text, the middle of a long review included, in order.",
    )
    mixed: bool | None = Field(
        default=None,
        description="Only with `sentences`: true when at least one sentence is confidently "
        "positive and one confidently negative (the bar rises with the number of sentences; "
        "docs/sentences.md). The `label` stays the whole text's.",
    )
    language: str | None = Field(
        default=None,
        description="ISO 639-1 code of the language the text was read as: `en` for every text "
        "the model reads; for one it cannot read, the detected language, or `und` when none "
        "was found (keyboard mash; also a text of signs only, such as emoji or `5/5`, which is "
        "read).",
        examples=["en"],
    )
    readable: bool = Field(
        default=True, description="Whether the model can read the text (English it knows)."
    )
    reason: Literal["other_language", "unknown_words"] | None = Field(
        default=None,
        description="Why the text is not readable: `other_language` (not English) or "
        "`unknown_words` (the model knows too few of its words, e.g. keyboard mash).",
    )
    error: ItemError | None = Field(
        default=None, description="Only under UNSUPPORTED_TEXT=refuse, for an unreadable text."
    )


class PredictResponse(BaseModel):
    model: str = Field(description="Id of the checkpoint that answered.")
    predictions: list[Prediction] = Field(description="One per review, in input order.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "review-sentiment@3f2a9c1b7d4e",
                    "predictions": [
                        {
                            "label": "positive",
                            "confidence": 0.97,
                            "probabilities": {"negative": 0.03, "positive": 0.97},
                            "language": "en",
                            "readable": True,
                        },
                        {
                            "label": None,
                            "confidence": None,
                            "probabilities": None,
                            "language": "de",
                            "readable": False,
                            "reason": "other_language",
                        },
                    ],
                }
            ]
        }
    )


class LiveResponse(BaseModel):
    status: Literal["alive"] = "alive"


class ModelInfo(BaseModel):
    id: str
    architecture: dict[str, Any] = Field(description="The SentimentRNN configuration.")
    parameters: int = Field(description="Trainable parameters in total.")
    parameters_by_layer: dict[str, int]
    vocab_size: int
    labels: list[str]
    max_tokens: int = Field(description="Longer reviews are truncated (head and tail kept).")
    temperature: float = Field(description="Softmax calibration temperature.")
    metrics: dict[str, Any] = Field(description="Training and validation metrics.")
    sha256: str = Field(description="sha256 of the checkpoint manifest.")
    backend: str = Field(description="What runs the model: `onnx` (ONNX Runtime) or `torch`.")
    explanations: bool = Field(description="Whether `explain` is available.")


class ErrorItem(BaseModel):
    field: str = Field(description="The offending field, e.g. `texts[3]`, or `body`.")
    message: str
    type: str


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. `validation_error`.")
    message: str
    request_id: str | None = None
    details: list[ErrorItem] | None = None


class ErrorResponse(BaseModel):
    """The one shape of every non-2xx answer."""

    error: ErrorBody

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "validation_error",
                        "message": "texts[1]: String should have at least 1 character",
                        "request_id": "7b0e9f5c2d3a4e18b6c1d0f2a9e8b7c6",
                        "details": [
                            {
                                "field": "texts[1]",
                                "message": "String should have at least 1 character",
                                "type": "string_too_short",
                            }
                        ],
                    }
                }
            ]
        }
    )


class HealthResponse(BaseModel):
    status: Literal["ok", "loading", "draining", "failed"]
    model: str | None = Field(default=None, description="The model id, once ready.")
    error: ErrorBody | None = Field(default=None, description="Why it is not ready (503 only).")

