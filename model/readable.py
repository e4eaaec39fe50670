"""Text the model can read anything in: text in which the tokenizer (model/text.py) finds a token.

The one definition (`has_token`), and what derives from it:

* `unreadable` and `NO_TOKEN_TYPE` / `NO_TOKEN_MESSAGE`: the service's 422 for a text with
  nothing to score, judged from each text's token count (service/runtime/runtime.py);
* `review_pattern`: the same rule as one regular expression, which the request schema publishes
  for clients and schema-driven fuzzers (service/schemas.py). Its character classes are read off
  the tokenizer's own rules over every code point at first use (~0.1 s, then cached), so they
  cannot go stale; tests/service/test_schemas.py holds the pattern to `has_token`.

Which language a readable text is in, and whether the model knows its words, is another
question: model/language.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from model.text import READ_ALONE, tokenize

NO_TOKEN_TYPE = "no_readable_token"
NO_TOKEN_MESSAGE = "Text has no word or sign the model can read"


def has_token(text: str) -> bool:
    """Whether the model reads anything in `text`: a word, a mark, an emoji, a face, a rating."""
    return bool(tokenize(text))


def unreadable(token_counts: Sequence[int]) -> list[int]:
    """The positions of the texts in which the pipeline found no token, from their token counts."""
    return [index for index, count in enumerate(token_counts) if count == 0]


# The tokenizer's emoticons that hold no readable character (":)", ";-(", "=/", "):"), with
# its conditions around them: not after ":" or "/" ("http://"), not before ")", "(" or "/".
# (Its rule also refuses a word character after the face; such a text is readable anyway.)
# Written after TOKEN_RE's `emoticon` alternative; the schema tests fail when the two differ.
EMOTICON = r"(?<![:/])(?:[:;=][-'^]?[)\](}/\\|(\[{*]|[)(]:)(?![)(/])"


def review_pattern() -> str:
    """`has_token` as a regular expression, plus no NUL characters (which the server refuses
    with its own 400). Something readable is a character the tokenizer reads alone (the letters
    of a break tag aside) or one of its emoticons."""
    readable = f"(?![bBrR]){readable_class()}|{_break_tag_letters()}|{EMOTICON}"
    return f"^[^\\u0000]*(?:{readable})[^\\u0000]*$"


@functools.cache
def readable_class() -> str:
    """A regex character class of every character the tokenizer reads as a token on its own (a
    letter or digit of any script, `_`, `!`, `?`, an emoji). Written as literal characters and
    ranges, not `\\w`: schema validators read `\\w` as ASCII (ECMAScript), Python as any script."""
    return _class_of(READ_ALONE)


@functools.cache
def spaces_class() -> str:
    """Every character the tokenizer's regexes read as `\\s`, as one character class (ECMAScript's
    `\\s` is another set)."""
    return _class_of(r"\s")


@functools.cache
def _break_tag_letters() -> str:
    """The letters of "br" where they are read: outside a break tag (`<br\\s*/?>`, any case),
    which the pipeline blanks out before tokenizing."""
    closes = f"{spaces_class()}*/?>"
    return f"(?<!<)[bB]|[bB](?![rR]{closes})|(?<!<[bB])[rR]|[rR](?!{closes})"


def _class_of(one_character: str) -> str:
    """The code points that `one_character` (a regex of one character) matches, as a class."""
    runs = re.compile(f"(?:{one_character})+")
    ranges = [(ord(m.group()[0]), ord(m.group()[-1])) for m in runs.finditer(_every_character())]
    return _char_class(ranges)


@functools.cache
def _every_character() -> str:
    """Every code point but the surrogates, in order, as one string (built in C: milliseconds)."""
    codes = np.arange(0x110000, dtype="<u4")
    return codes[(codes < 0xD800) | (codes > 0xDFFF)].tobytes().decode("utf-32-le")


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    """Ranges of code points (first, last) as one regex character class of literal characters."""
    return "[" + "".join(_range(first, last) for first, last in ranges) + "]"


def _range(first: int, last: int) -> str:
    return _literal(first) if first == last else f"{_literal(first)}-{_literal(last)}"


def _literal(code: int) -> str:
    char = chr(code)
    return "\\" + char if char in "\\]^-[" else char
