"""The published request schema describes the server's own rules."""

from __future__ import annotations

import re

from model.text import tokenize_with_spans
from service.schemas import READABLE, build_predict_request


def test_readable_class_is_exactly_what_the_pipeline_reads() -> None:
    # Every code point (surrogates aside), each on its own between spaces: the pipeline finds a
    # token at a code point exactly when the schema's class matches it. A tokenizer change that
    # reads new characters (emoji, say) fails here until READABLE says so too.
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = " ".join(points)
    read = {token.start for token in tokenize_with_spans(text)}
    readable = re.compile(READABLE)
    described = {2 * i for i, char in enumerate(points) if readable.fullmatch(char)}
    assert read == described, sorted(read ^ described)[:20]


def test_explain_limit_is_in_the_schema_only_when_it_binds() -> None:
    limited = build_predict_request(300, 8, 3).model_json_schema()
    assert {"properties": {"texts": {"maxItems": 3}}} in limited["anyOf"]
    assert limited["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    unlimited = build_predict_request(300, 8, 8).model_json_schema()
    assert "anyOf" not in unlimited
