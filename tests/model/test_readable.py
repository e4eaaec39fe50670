"""model/readable.py: one definition of a text the model can read anything in, and the
character classes derived from the tokenizer's rules, which must be exactly what it reads."""

from __future__ import annotations

import re

from model.readable import (
    _every_character,
    has_token,
    readable_class,
    review_pattern,
    spaces_class,
    unreadable,
)
from model.text import tokenize_with_spans


def matched(character_class: str) -> set[int]:
    return {ord(c) for c in re.findall(character_class, _every_character())}


def test_the_readable_class_is_every_character_the_tokenizer_reads_alone() -> None:
    # The tokenizer itself over every code point, each alone between spaces: a token starting
    # at 2*i is point i read. A tokenizer change that READ_ALONE misses fails here.
    points = _every_character()
    read = {ord(points[t.start // 2]) for t in tokenize_with_spans(" ".join(points))}
    assert matched(readable_class()) == read
    assert len(read) > 100_000  # every script's letters and digits, not ASCII alone


def test_the_spaces_class_is_what_the_tokenizers_regexes_read_as_space() -> None:
    space = re.compile(r"\s")
    assert matched(spaces_class()) == {c for c in range(0x110000) if space.fullmatch(chr(c))}


def test_a_text_is_readable_when_the_tokenizer_finds_a_token() -> None:
    for text in ("fine", "!", "😀", ":)", "8/10", "日本"):
        assert has_token(text) and re.fullmatch(review_pattern(), text), text
    for text in ("", "\u200b", "<br />", "... --- ;;;", "🏽"):
        assert not has_token(text) and not re.fullmatch(review_pattern(), text), text
    assert unreadable([3, 0, 1, 0]) == [1, 3]
