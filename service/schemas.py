"""Request and response bodies. The request model carries the configured limits, so the
OpenAPI schema, the 422 messages and the settings always agree."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
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

from model.text import tokenize_with_spans

DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BATCH = 64

EXAMPLE_TEXT = "A moving, beautifully acted film. I loved every minute of it."
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
}


# Whitespace as JSON Schema (ECMAScript) regexes define it, so that the published pattern and
# the check below agree exactly; str.isspace() would also count control characters.
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_NOT_SPACE = re.compile(f"[^{_SPACE}]")


@functools.cache
def readable_class() -> str:
    """A regex character class of every character the model's pipeline reads as a token on
    its own (a letter or digit of any script, `_`, `!`, `?`, an emoji), found by running the
    pipeline over every code point, so it follows the tokenizer. Written as literal characters
    and ranges, not `\\w`: schema validators read `\\w` as ASCII (ECMAScript), Python as any
    script. About 0.4 s, once, when the schema is first built."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    # Each code point on its own between spaces: a token starting at 2*i is point i read.
    return _char_class(ord(points[t.start // 2]) for t in tokenize_with_spans(" ".join(points)))


def _char_class(codes: Iterable[int]) -> str:
    """`codes` as one regex character class of literal characters and ranges."""
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "[" + "".join(_range(first, last) for first, last in ranges) + "]"


@functools.cache
def _break_tag_letters() -> str:
    """The letters of "br" where they are read: outside a break tag (`<br\\s*/?>`, any case),
    which the pipeline blanks out before tokenizing. Whitespace is `\\s` as the tokenizer's
    regexes read it, written out (ECMAScript's `\\s` is another set)."""
    space = re.compile(r"\s")
    spaces = _char_class(c for c in range(0x110000) if space.fullmatch(chr(c)))
    closes = f"{spaces}*/?>"
    return f"(?<!<)[bB]|[bB](?![rR]{closes})|(?<!<[bB])[rR]|[rR](?!{closes})"


def _range(first: int, last: int) -> str:
    return _literal(first) if first == last else f"{_literal(first)}-{_literal(last)}"


def _literal(code: int) -> str:
    char = chr(code)
    return "\\" + char if char in "\\]^-[" else char


# The tokenizer's emoticons that hold no readable character (":)", ";-(", "=/", "):"), with
# its conditions around them: not after ":" or "/" ("http://"), not before ")", "(" or "/".
# (Its rule also refuses a word character after the face; such a text is readable anyway.)
EMOTICON = r"(?<![:/])(?:[:;=][-'^]?[)\](}/\\|(\[{*]|[)(]:)(?![)(/])"


def review_pattern() -> str:
    """Documents (for clients and schema-driven fuzzers) what the server enforces with its own
    messages: something the model can read (else 422), and no NUL characters (else 400).
    Something readable is a character the tokenizer reads alone (the letters of a break tag
    aside) or one of its emoticons."""
    readable = f"(?![bBrR]){readable_class()}|{_break_tag_letters()}|{EMOTICON}"
    return f"^[^\\u0000]*(?:{readable})[^\\u0000]*$"


def _not_blank(value: str) -> str:
    if _NOT_SPACE.search(value) is None:
        raise PydanticCustomError("blank_text", "Text must contain a non-whitespace character")
    return value


def _review_field(max_chars: int) -> Any:
    """The limits of one review: 1..max_chars characters."""
    return Field(min_length=1, max_length=max_chars, json_schema_extra=_add_review_pattern)


def _add_review_pattern(schema: dict[str, Any]) -> None:
    schema["pattern"] = review_pattern()  # built with the schema (lazily), not at import


Review = Annotated[str, _review_field(DEFAULT_MAX_CHARS), AfterValidator(_not_blank)]


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
    review = Annotated[str, _review_field(max_chars), AfterValidator(_not_blank)]
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


class Prediction(BaseModel):
    label: str = Field(examples=["positive"])
    confidence: float = Field(ge=0, le=1, description="Probability of `label`.", examples=[0.97])
    probabilities: dict[str, float] = Field(
        description="Calibrated probability per label; they sum to 1.",
        examples=[{"negative": 0.03, "positive": 0.97}],
    )
    explanation: list[TokenAttribution] | None = Field(
        default=None, description="Only when the request asked for `explain`."
    )


class PredictResponse(BaseModel):
    model: str = Field(description="Id of the checkpoint that answered.")
    predictions: list[Prediction] = Field(description="One per review, in input order.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "imdb-sentiment@3f2a9c1b7d4e",
                    "predictions": [
                        {
                            "label": "positive",
                            "confidence": 0.97,
                            "probabilities": {"negative": 0.03, "positive": 0.97},
                        }
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
