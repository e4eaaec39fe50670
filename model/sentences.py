"""Sentences of a review, with exact offsets, and the rule that calls a review MIXED.

`split_sentences(text)` returns `(start, end)` spans such that `text[start:end]` is a sentence:
Python string indices into the text as given, trimmed of surrounding whitespace and break
tags. The boundaries come from sentencex (Wikimedia's rule-based splitter, a Rust wheel),
then from a review layer that no library provides: line breaks and `<br />`, an emoji or
emoticon before a capital, "!!" before any word, ellipses, a missing space after a stop; and
pieces without a letter or digit ("!!", "😍") joined to the sentence before them. Why this
library and what each choice costs: docs/sentences.md.

Every step is linear in the text (tests/model/test_sentences.py quadruples the worst shapes).

`is_mixed(positive, negative)` is the MIXED rule over the sentences' calibrated probabilities;
its constant was set on held-out reviews (docs/sentences.md, `python -m bench.mixed`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from model.text import EMOJI, EMOTICON

Span = tuple[int, int]

# -- the library, behind a guard -------------------------------------------------------------

# sentencex 1.0.32 cannot take lone surrogates (UnicodeEncodeError crossing into Rust) nor a
# non-ASCII space after a capital and before a stop ("I\u00a0.": a Rust panic). Both are
# rewritten one code point for one, so every offset the library returns is one of `text`.
_LINE_SEPARATORS = {0x2028: "\n", 0x2029: "\n", 0x85: "\n"}
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_WIDE_SPACE_RE = re.compile(r"[^\S\n\r\t\f\v ]")


def safe_for_rust(text: str) -> str:
    """`text` with lone surrogates as U+FFFD and non-ASCII whitespace as ASCII, same length."""
    if text.isascii():
        return text
    text = _SURROGATE_RE.sub("\ufffd", text)
    return _WIDE_SPACE_RE.sub(lambda m: _LINE_SEPARATORS.get(ord(m.group()), " "), text)


_FALLBACK_RE = re.compile(r"(?<=[.!?])\s+", re.IGNORECASE)


def fallback_spans(text: str) -> list[Span]:
    """A stop and whitespace end a sentence: used only if the library fails on a text."""
    spans, at = [], 0
    for match in _FALLBACK_RE.finditer(text):
        spans.append((at, match.start()))
        at = match.end()
    spans.append((at, len(text)))
    return spans


def library_spans(text: str) -> list[Span]:
    """sentencex's sentences of `text` (untrimmed); the fallback rule if it fails anyway."""
    import sentencex  # a Rust extension: imported with the first sentence request

    try:
        bounds = sentencex.get_sentence_boundaries("en", safe_for_rust(text))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # pyo3's PanicException is no Exception subclass
        return fallback_spans(text)
    return [(int(b["start_index"]), int(b["end_index"])) for b in bounds]


# -- the review layer ------------------------------------------------------------------------
#
# Every pattern is linear: runs are matched possessively and only from their first character
# (a look-behind refuses the middle of a run), so "!" x 20,000 costs one pass. Cuts are found
# once on the whole text, then applied to the library's spans.

_EMOJI = (  # the tokenizer's emoji, with skin tones, variation selectors and joined sequences
    EMOJI + r"[\U0001F3FB-\U0001F3FF\uFE0F]*+(?:\u200D[\U0001F300-\U0001FAFF\u2600-\u27BF]\uFE0F?)*+"
)
_LINE_BREAK_RE = re.compile(r"\r\n|[\n\r\u2028\u2029\x85]")

# One alternative per kind of cut, each starting with a plain character class (the engine skips
# to candidates in C); the named group is the separator the cut removes.
_CUT_RE = re.compile(
    r"<[bB][rR]\s*+/?>(?P<tag>)(?:\s*+<[bB][rR]\s*+/?>)*+\s*+"  # break tags
    r"|[\n\r\u2028\u2029\x85](?P<line>)\s*+"  # a line break (blank lines included)
    rf"|{_EMOJI}(?P<emoji>[ \t]++)(?=[A-Z])"  # "Great 😍 Terrible battery"
    rf"|{EMOTICON}(?P<face>[ \t]++)(?=[A-Z])"  # "Love it :) Will buy again"
    r"|[!?](?<![!?][!?])[!?]*+(?P<bang>\s++)(?=\S)"  # "love it!! my kids"
    r"|…(?<!……)…*+(?P<ellipsis>\s++)(?=[A-Z])"  # "Great screen… Terrible"
    r"|\.(?<!\.\.)\.\.++(?P<dots>\s++)(?=[A-Z])"  # "fine... The"
    r"|[。！？](?<![。！？][。！？])[。！？]*+(?P<wide>\s*+)(?=\S)"  # ideographic stops
    r"|[.!?](?<=[a-z]{2}[.!?])(?P<glued>)(?=[A-Z][a-z])"  # "phone.Battery" (URLs refused below)
)
_GROUPS = ("tag", "line", "emoji", "face", "bang", "ellipsis", "dots", "wide", "glued")
_URL_LOOKBACK = 200  # bounded, so a text without spaces stays linear
_URLISH_RE = re.compile(r"[/@]|www|http", re.IGNORECASE)
_HAS_WORD_RE = re.compile(r"[^\W_]")
_LEAD_RE = re.compile(r"(?:\s++|<br\s*+/?>)++", re.IGNORECASE)
_BREAK_TAG_END_RE = re.compile(r"<br\s{0,32}/?>\Z", re.IGNORECASE)


def review_cuts(text: str) -> list[Span]:
    """Separators (start, end) at which a review's sentence ends whatever the library says."""
    cuts = []
    for match in _CUT_RE.finditer(text):
        kind = next(g for g in _GROUPS if match.start(g) >= 0)
        start, end = match.start(kind), match.end()
        if kind in ("tag", "line"):
            start = match.start()
            if _soft_wrap(text, kind, start, end):
                continue
        elif kind == "face" and _inside_word(text, match.start()):
            continue  # "http://", "a:b" are no faces
        elif kind == "glued" and _in_url(text, start):
            continue
        cuts.append((start, end))
    return cuts


def _soft_wrap(text: str, kind: str, start: int, end: int) -> bool:
    """A single line break before a lower-case word continues the sentence."""
    blank = kind == "tag" or len(_LINE_BREAK_RE.findall(text, start, end)) >= 2
    return not blank and end < len(text) and text[end].islower()


def _inside_word(text: str, at: int) -> bool:
    before = text[at - 1] if at else " "
    return before in ":/" or before.isalnum() or before == "_"


def _in_url(text: str, at: int) -> bool:
    floor = max(0, at - _URL_LOOKBACK)
    word_start = max(text.rfind(" ", floor, at), text.rfind("\n", floor, at), floor)
    return _URLISH_RE.search(text, word_start, at) is not None


def _trim(text: str, span: Span) -> Span | None:
    """`span` without surrounding whitespace and break tags; None when nothing is left."""
    start, end = span
    lead = _LEAD_RE.match(text, start, end)
    if lead:
        start = lead.end()
    while end > start:
        if text[end - 1].isspace():
            end = start + len(text[start:end].rstrip())
            continue
        tag = None
        if text[end - 1] == ">":
            tag = _BREAK_TAG_END_RE.search(text, max(start, end - 40), end)
        if tag is None:
            break
        end = tag.start()
    return (start, end) if end > start else None


def _cut(spans: list[Span], cuts: list[Span]) -> list[Span]:
    """The library's `spans`, each cut further at the separators in `cuts` (both in order)."""
    pieces: list[Span] = []
    i = 0
    for start, end in spans:
        at = start
        while i < len(cuts) and cuts[i][0] < start:
            i += 1
        j = i
        while j < len(cuts) and cuts[j][1] <= end:
            pieces.append((at, cuts[j][0]))
            at = cuts[j][1]
            j += 1
        pieces.append((at, end))
    return pieces


def postprocess(text: str, spans: list[Span]) -> list[Span]:
    """`spans` cut at `review_cuts`, trimmed, and with pieces that hold no letter or digit
    ("!!", "😍", "...") joined to the sentence before them on the same line (or, first in a
    text or line, to the one after)."""
    merged: list[Span] = []
    worded = True  # whether merged[-1] holds a letter or digit
    for piece in _cut(spans, review_cuts(text)):
        trimmed = _trim(text, piece)
        if trimmed is None:
            continue
        start, end = trimmed
        has_word = _HAS_WORD_RE.search(text, start, end) is not None
        if merged and not worded:  # the piece before had no word: it joins this one
            merged[-1] = (merged[-1][0], end)
            worded = has_word
        elif merged and not has_word and _LINE_BREAK_RE.search(text, merged[-1][1], start) is None:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
            worded = has_word
    return merged


def split_sentences(text: str) -> list[Span]:
    """The sentences of `text` as (start, end) spans: `text[start:end]` is each sentence."""
    return postprocess(text, library_spans(text))


# -- MIXED -----------------------------------------------------------------------------------

# t(n) = clamp(1 - MIXED_K / n, 0.5, 0.99) for a review of n sentences: one stray confident
# sentence grows likelier with n, so the bar rises with it. MIXED_K = 0.75 is the largest k
# whose false-mixed rate stays within 10% on held-out one-sided reviews (pairs and singles);
# the table, and how to re-fit it after a retrain (it applies to calibrated probabilities):
# docs/sentences.md, `python -m bench.mixed`.
MIXED_K = 0.75
MIXED_FLOOR, MIXED_CEILING = 0.5, 0.99


def mixed_threshold(n_sentences: int, k: float = MIXED_K) -> float:
    """The probability both sides must reach in a review of `n_sentences` sentences."""
    return min(MIXED_CEILING, max(MIXED_FLOOR, 1.0 - k / max(1, n_sentences)))


def mixed_score(positive: Sequence[float], negative: Sequence[float]) -> float:
    """min(the most positive sentence's P(positive), the most negative one's P(negative))."""
    if not positive or not negative:
        return 0.0
    return min(max(positive), max(negative))


def is_mixed(positive: Sequence[float], negative: Sequence[float], k: float = MIXED_K) -> bool:
    """Whether a review whose sentences have these P(positive) and P(negative) (one each per
    sentence, in order) is MIXED: at least one sentence confidently each way."""
    if len(positive) < 2:
        return False  # one sentence is one-sided, however it is scored
    return mixed_score(positive, negative) >= mixed_threshold(len(positive), k)
