"""The published request schema describes the server's own rules, and reads the same in
Python and in the schema validators fuzzers use (jsonschema_rs, ECMAScript-style)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.readable import readable_class
from model.text import tokenize
from service.schemas import build_predict_request, review_pattern

SAMPLES = [
    "A fine film.",
    "فيلم رائع",  # Arabic letters
    "𝕿𝖍𝖊 𝖖𝖚𝖎𝖈𝖐 𝖋𝖔𝖝",  # mathematical letters outside the BMP: a \w only outside ECMAScript
    "日本の映画",
    "!!!",
    "x",
    "_",
    "Ⅻ",  # a number letter
    "\u200b",  # zero-width space
    "\x01\x02",
    "... --- ;;;",
    "😀🎬",
    "\u0301\u0302",  # combining marks alone
    "[]^-\\",
    ":)",  # emoticons: tokens made of characters that are no token alone
    ";-(",
    "):",
    "=/",
    "::)",  # no face: after ":" (as in "http://")
    ":)/",
    "🏽",  # a skin tone alone: dropped
    "<br />",  # break tags are blanked, their letters unread
    "<BR/><br   >",
    "<br/>:)",
    "<br",
]
# Signs around faces, break tags and their pieces, for texts the samples do not foresee.
PIECES = [":", ";", "=", "-", "'", "^", ")", "(", "/", "\\", "|", "[", "]", "*", "<", ">", "3",
          "<br />", "<br/>", "<Br>", "<br", "b", "R", "/>", " ", "\x1c", "\ufeff", "🏽", "x"]


@pytest.mark.parametrize("text", SAMPLES)
def test_pattern_accepts_what_the_pipeline_reads(text: str) -> None:
    assert bool(re.fullmatch(review_pattern(), text)) == bool(tokenize(text))


@pytest.mark.parametrize("text", SAMPLES)
def test_schema_validators_read_the_pattern_as_python_does(text: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": review_pattern()})
    assert validator.is_valid(text) == bool(tokenize(text))


@settings(max_examples=1500, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join))
def test_pattern_and_pipeline_agree_on_signs_and_tags(text: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": review_pattern()})
    readable = bool(tokenize(text))
    assert bool(re.fullmatch(review_pattern(), text)) == readable
    assert validator.is_valid(text) == readable


def test_readable_class_is_one_character_class() -> None:
    pattern = re.compile(readable_class())
    assert pattern.fullmatch("a") and pattern.fullmatch("!") and not pattern.fullmatch("-")
    assert not pattern.fullmatch("ab")  # one character, however the ranges are written


def test_explain_limit_is_in_the_schema_only_when_it_binds() -> None:
    limited = build_predict_request(300, 8, 3).model_json_schema()
    assert {"properties": {"texts": {"maxItems": 3}}} in limited["anyOf"]
    assert limited["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    unlimited = build_predict_request(300, 8, 8).model_json_schema()
    assert "anyOf" not in unlimited
