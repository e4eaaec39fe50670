"""The one text pipeline shared by training and serving: normalise, tokenize, map to ids, truncate.

Every step is deterministic and its settings travel inside the checkpoint, so the service
encodes a review exactly as training did. The tokenizer's name and version travel too:
a checkpoint whose vocabulary another tokenizer built is refused at load time.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"

# Bumped whenever a text can tokenize differently: a vocabulary is only valid for its tokenizer.
TOKENIZER = "words-emoji-ratings/2"
LEGACY_TOKENIZER = "words/1"  # what checkpoints written before the version was recorded used

# IMDB writes paragraph breaks as HTML; they are separators, never words.
BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}
_NUMBER = r"\d{1,3}(?:[.,]\d)?"
# Pictographs: one token each, skin tones and presentation selectors dropped.
EMOJI = (r"[\U0001F300-\U0001F5FF\U0001F600-\U0001F64F\U0001F680-\U0001F6FF"
         r"\U0001F900-\U0001F9FF\U0001FA70-\U0001FAFF\u2600-\u27BF\u2B50\u2B55\u2764]")
# Western emoticons: ":)", ";-D", "=P", "<3", "</3", and reversed faces "):" "(:".
EMOTICON = r"(?:[:;=][-'^o]?[)\](}DdPpOo/\\|(\[{*]|<3+|</3|[)(]:)"
MARKS = "[!?]"  # the two punctuation marks that carry sentiment on their own
# Alternatives in priority order; each named group becomes one token kind.
TOKEN_RE = re.compile(
    # plain words first, as most tokens are: letters (inner apostrophes kept: "don't"), not
    # glued to digits, not a number word before "stars"
    r"(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)(?![\w'’]|[\s-]+stars?\b)"
    # "8/10", "4.5 / 5", "3 out of 10": a score over a scale
    rf"|(?P<score>(?<![\w/.]){_NUMBER}\s*(?:/|out\s+of)\s*(?:100|10|5|4)(?![\w/]))"
    # "five stars", "1 star", "4.5-star"
    rf"|(?P<stars>\b(?:{_NUMBER}|{'|'.join(_NUMBER_WORDS)})[\s-]*stars?\b)"
    # emoticons, western style; not inside words or URLs ("http://")
    rf"|(?P<emoticon>(?<![:/]){EMOTICON}(?![\w)(/]))"
    rf"|(?P<emoji>{EMOJI})"
    # a clitic alone, then any other word (digits, underscores) and the two punctuation marks
    # that carry sentiment on their own
    r"|(?P<clitic>(?<!\w)['’](?:s|re|ve|ll|d|m)\b)"  # "it 's" as SST-2 writes it
    rf"|(?P<other>\w+(?:['’]\w+)*)|(?P<mark>{MARKS})",  # any other word: digits, underscores
    re.IGNORECASE,
)
# The same alternatives without names: findall then returns whole matches, fast.
# It only ever reads lower-cased ASCII, where it matches as TOKEN_RE does: case-sensitive
# ASCII classes are faster.
_ANY_TOKEN_RE = re.compile(
    re.sub(r"\(\?P<\w+>", "(?:", TOKEN_RE.pattern).replace(r"[^\W\d_]", "[a-z]"), re.ASCII
)
_STAR_ENDINGS = ("star", "stars")
_SCORE_RE = re.compile(rf"({_NUMBER})\s*(?:/|out\s+of)\s*(\d+)", re.IGNORECASE)
_STARS_RE = re.compile(rf"({_NUMBER}|[a-z]+)", re.IGNORECASE)
RATING_BANDS = 5  # ratings become <rating_1> (worst) … <rating_5> (best), whatever the scale

# Emoticons normalised to one spelling per mood, so ":-)", ":)" and "=)" share a vector.
_EMOTICON_MOODS = {
    ")": ":)", "]": ":)", "}": ":)", "d": ":d", "p": ":p", "(": ":(", "[": ":(", "{": ":(",
    "/": ":/", "\\": ":/", "|": ":|", "o": ":o", "*": ":*",
}


_EMOJI_MODIFIERS = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))  # skin tones

# One character that is a token even alone: a word character of any script (`other` reads every
# one), a mark, a pictograph other than a skin tone. Whether a text has anything the model can
# read rests on it (model/readable.py); tests/model/test_readable.py holds it to TOKEN_RE.
READ_ALONE = rf"(?![{''.join(sorted(_EMOJI_MODIFIERS))}])(?:\w|{MARKS}|{EMOJI})"


def rating_token(value: float, scale: float) -> str | None:
    """`<rating_k>`, k = 1 (worst) … RATING_BANDS (best); None when value/scale is no rating."""
    if scale < 2 or not 0 <= value <= scale:
        return None
    # Star scales start at one: "1/5" is the lowest mark, as "0/10" is on a ten-point scale.
    fraction = max(0.0, value - 1) / (scale - 1) if scale <= 5 else value / scale
    return f"<rating_{1 + round(fraction * (RATING_BANDS - 1))}>"


def _score_token(raw: str) -> str | None:
    m = _SCORE_RE.match(raw)
    if m is None:
        return None
    return rating_token(float(m.group(1).replace(",", ".")), float(m.group(2)))


def _stars_token(raw: str) -> str | None:
    count = _STARS_RE.match(raw)
    if count is None:
        return None
    word = count.group(1).lower()
    value = _NUMBER_WORDS.get(word) if word.isalpha() else float(word.replace(",", "."))
    if value is None:
        return None
    # Five-star scales are the common case; "8 stars" can only be out of ten.
    return rating_token(float(value), 5.0 if value <= 5 else 10.0)


def _emoticon_token(raw: str) -> str:
    if "<" in raw:
        return "</3" if "/" in raw else "<3"
    if raw[0] in "()":  # mirrored faces: "(:" smiles, "):" frowns
        return ":)" if raw[0] == "(" else ":("
    mood = _EMOTICON_MOODS.get(raw[-1].lower(), raw)
    return ";)" if raw[0] == ";" and mood == ":)" else mood


def _normalise_word(raw: str, lowercase: bool) -> str:
    if raw.isascii():
        return raw.lower() if lowercase else raw
    token = unicodedata.normalize("NFKC", raw).replace("’", "'")
    return token.lower() if lowercase else token


def _iter_tokens(text: str, lowercase: bool) -> Iterator[tuple[str, int, int]]:
    # Blank out <br /> with spaces of equal length so offsets stay those of the original.
    cleaned = BREAK_RE.sub(lambda m: " " * len(m.group()), text)
    for m in TOKEN_RE.finditer(cleaned):
        kind, raw = m.lastgroup, m.group()
        if kind in ("word", "other"):
            if "'" in raw or "’" in raw:
                yield from _split_contraction(raw, m.start(), lowercase)
                continue
            token: str | None = _normalise_word(raw, lowercase)
        elif kind == "clitic":
            token = _normalise_word(raw, lowercase).replace("’", "'")
        elif kind == "mark":
            token = raw
        elif kind == "emoji":
            if raw in _EMOJI_MODIFIERS:
                continue
            token = raw
        elif kind == "emoticon":
            token = _emoticon_token(raw)
        elif kind == "score":
            token = _score_token(raw)
        else:
            token = _stars_token(raw)
        if token is None:  # "12/5" is no score: fall back to its words
            yield from _iter_words(raw, m.start(), lowercase)
        else:
            yield token, m.start(), m.end()


_WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
# Contractions split as the Penn Treebank (and so SST-2) writes them: "doesn't" -> "does"
# "n't", "it's" -> "it" "'s"; raw reviews and pre-tokenized corpora then agree.
_CONTRACTION_RE = re.compile(r"(\w+?)(n['’]t|['’](?:s|re|ve|ll|d|m))$", re.IGNORECASE)


def _split_contraction(raw: str, offset: int, lowercase: bool) -> Iterator[tuple[str, int, int]]:
    m = _CONTRACTION_RE.match(raw)
    if m is None:
        yield _normalise_word(raw, lowercase), offset, offset + len(raw)
        return
    cut = m.start(2)
    yield _normalise_word(raw[:cut], lowercase), offset, offset + cut
    yield _normalise_word(raw[cut:], lowercase).replace("’", "'"), offset + cut, offset + len(raw)


def _iter_words(raw: str, offset: int, lowercase: bool) -> Iterator[tuple[str, int, int]]:
    for m in _WORD_RE.finditer(raw):
        yield _normalise_word(m.group(), lowercase), offset + m.start(), offset + m.end()


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = True  # fold case before lookup
    max_tokens: int = 400  # longer reviews are truncated to this many tokens
    head_fraction: float = 0.25  # share of max_tokens kept from the start; the rest from the end
    min_freq: int = 2  # tokens seen fewer times in training become <unk>
    max_vocab: int = 30_000  # vocabulary size cap, special tokens included
    tokenizer: str = TOKENIZER  # name/version of the tokenizer that built the vocabulary
    spelling: bool = False  # read an unknown word as its most frequent one-edit neighbour

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError("head_fraction must be within [0, 1]")
        if self.min_freq < 1:
            raise ValueError("min_freq must be >= 1")
        if self.max_vocab < 3:
            raise ValueError("max_vocab must be >= 3")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextConfig:
        """Settings as saved; a checkpoint from before versions were recorded is `words/1`."""
        return cls(**{"tokenizer": LEGACY_TOKENIZER, **data})


class Token(NamedTuple):
    text: str  # the normalised token, as looked up in the vocabulary
    start: int  # character span in the original, un-normalised text
    end: int


def tokenize_with_spans(text: str, lowercase: bool = True) -> list[Token]:
    """Tokens with their character spans in `text` (spans index the original string)."""
    return [Token(*t) for t in _iter_tokens(text, lowercase)]


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """The token strings of `text`; identical to the texts of `tokenize_with_spans`."""
    cleaned = BREAK_RE.sub(" ", text)
    if not (lowercase and cleaned.isascii()):
        return [t[0] for t in _iter_tokens(text, lowercase)]
    # Fast path for lower-cased ASCII (most reviews): find every token at C speed and send
    # only the few that are not plain words (ratings, faces, contractions, marks) through the
    # full rules. A piece matched in context is re-read alone by the same first alternative.
    lowered = cleaned.lower()
    tokens = _ANY_TOKEN_RE.findall(lowered)
    plain = list(map(str.isalnum, tokens))
    if "star" in lowered:  # "10stars" is one alphanumeric match, but a rating: full rules
        plain = [
            alnum and not (t[:1].isdigit() and t.endswith(_STAR_ENDINGS))
            for alnum, t in zip(plain, tokens, strict=True)
        ]
    specials = []
    at = -1
    with contextlib.suppress(ValueError):
        while True:
            at = plain.index(False, at + 1)
            specials.append(at)
    if not specials:
        return tokens
    # A new list, not splices in place: a splice moves every later token, which made a text of
    # nothing but emoticons cost the square of its length.
    out: list[str] = []
    done = 0
    for at in specials:
        out += tokens[done:at]
        done = at + 1
        raw = tokens[at]
        if raw in ("!", "?"):
            out.append(raw)
        elif len(raw) <= _SHORT_SPECIAL:
            out += _read_short_special(raw)
        else:
            out += _read_special(raw)
    out += tokens[done:]
    return out


def _read_special(raw: str) -> list[str]:
    """The tokens of one lower-cased ASCII piece the fast path found not to be a plain word."""
    if "'" in raw and raw[0] != "'" and _WORD_RE.fullmatch(raw):
        return [t[0] for t in _split_contraction(raw, 0, True)]
    return [t[0] for t in _iter_tokens(raw, True)]


# Short special pieces (faces, ratings, contractions) come from a small set and repeat, so their
# readings are cached: a text of nothing but emoticons then costs what plain words cost.
_SHORT_SPECIAL = 12
_read_short_special = functools.lru_cache(maxsize=4096)(_read_special)


def truncation_window(n_tokens: int, max_tokens: int, head_fraction: float) -> tuple[int, int]:
    """(head, tail): keep tokens [0, head) and [n - tail, n); the middle of a long review goes."""
    if n_tokens <= max_tokens:
        return n_tokens, 0
    head = round(max_tokens * head_fraction)
    return head, max_tokens - head


def truncate(items: list[Any], max_tokens: int, head_fraction: float) -> list[Any]:
    head, tail = truncation_window(len(items), max_tokens, head_fraction)
    return items[:head] + (items[len(items) - tail :] if tail else [])


@dataclass
class Vocabulary:
    tokens: list[str]  # id -> token; ids 0 and 1 are <pad> and <unk>
    index: dict[str, int] = field(init=False, repr=False)
    _deletes: dict[str, int] | None = field(init=False, repr=False, default=None)
    _longest_corrigible: int = field(init=False, repr=False, default=0)
    _corrections: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _correction_bytes: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if self.tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError("a vocabulary must start with <pad>, <unk>")
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int, max_size: int) -> Vocabulary:
        """Most frequent first, ties broken by the token itself, so the same data gives the same ids."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        ranked = sorted(
            (tok for tok, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        return cls([PAD_TOKEN, UNK_TOKEN, *ranked[: max_size - 2]])

    def ids(self, tokens: list[str], spelling: bool = False) -> list[int]:
        get = self.index.get
        ids = [get(tok, UNK_ID) for tok in tokens]
        if spelling:
            # list.index finds the few unknown words at C speed
            at = -1
            with contextlib.suppress(ValueError):
                while True:
                    at = ids.index(UNK_ID, at + 1)
                    ids[at] = self.spelling_neighbour(tokens[at])
        return ids

    def spelling_neighbour(self, token: str) -> int:
        """The most frequent vocabulary word one edit away from `token` ("gerat" -> "great").

        Symmetric-delete lookup: two words are one insertion, deletion, substitution or
        adjacent swap apart when one is, or both share, a one-character deletion of the
        other. Only alphabetic words of 4+ letters are corrected: short ones are too
        ambiguous. A word more than one letter longer than the longest corrigible vocabulary
        word has no neighbour and is refused before any work: the lookup builds n deletions of
        n letters, so its cost is bounded by the vocabulary, never by what a client sends.
        <unk> when none is found.
        """
        cached = self._corrections.get(token)
        if cached is not None:
            return cached
        deletes, longest = self._deletes_index()
        if not (_MIN_CORRECTED <= len(token) <= longest + 1 and token.isalpha()):
            return UNK_ID
        candidates = [self.index.get(d) for d in _deletions(token)]
        candidates += [deletes.get(token)] + [deletes.get(d) for d in _deletions(token)]
        found = [c for c in candidates if c is not None and len(self.tokens[c]) >= _MIN_CORRECTED]
        best = min(found, default=UNK_ID)
        self._remember(token, best)
        return best

    def _remember(self, token: str, best: int) -> None:
        """Cache a correction while the cache holds under _MAX_CORRECTION_BYTES (then stop:
        a stream of random words must not grow a worker without bound)."""
        cost = sys.getsizeof(token) + _CACHE_ENTRY_BYTES
        if self._correction_bytes + cost <= _MAX_CORRECTION_BYTES:
            self._corrections[token] = best
            self._correction_bytes += cost

    def prepare_spelling(self) -> None:
        """Build the lookup the first unknown word would otherwise build (about 0.1 s): a
        server does it before it forks, so every worker shares it and none stalls a request."""
        self._deletes_index()

    def _deletes_index(self) -> tuple[dict[str, int], int]:
        """One-character deletions of every corrigible word -> the most frequent word's id, and
        the length of the longest corrigible word."""
        if self._deletes is None:
            deletes: dict[str, int] = {}
            longest = 0
            for i, tok in enumerate(self.tokens):
                if len(tok) >= _MIN_CORRECTED and tok.isalpha():
                    longest = max(longest, len(tok))
                    for d in _deletions(tok):
                        deletes.setdefault(d, i)  # ids ascend by frequency: first is best
            self._deletes, self._longest_corrigible = deletes, longest
        return self._deletes, self._longest_corrigible


_MIN_CORRECTED = 4
# The correction cache's budget: key strings plus a dict slot and an int each. Keys are at most
# one letter longer than the longest vocabulary word, so ~16 MB is some 100,000 words.
_MAX_CORRECTION_BYTES = 16 * 2**20
_CACHE_ENTRY_BYTES = 100  # a dict entry (hash, key and value pointers, slack) and a small int


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@dataclass
class TextPipeline:
    config: TextConfig
    vocab: Vocabulary

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, truncated head+tail; at least one id (an empty text gives <unk>).
        Of a long text only the ends that truncation keeps are tokenized (`tokenize_kept`)."""
        return self.encode_tokens(tokenize_kept(text, self.config))

    def encode_tokens(self, tokens: list[str]) -> list[int]:
        """`encode` for text already tokenized with this pipeline's settings."""
        kept = truncate(tokens, self.config.max_tokens, self.config.head_fraction)
        return self.vocab.ids(kept, self.config.spelling) or [UNK_ID]

    def encode_with_spans(self, text: str) -> tuple[list[int], list[Token]]:
        """Like `encode`, plus the kept tokens with their spans in `text` (for explanations)."""
        tokens = truncate(
            tokenize_with_spans(text, self.config.lowercase),
            self.config.max_tokens,
            self.config.head_fraction,
        )
        return self.vocab.ids([t.text for t in tokens], self.config.spelling), tokens

    @classmethod
    def fit(cls, texts: Iterable[str], config: TextConfig) -> TextPipeline:
        return cls.fit_tokens((tokenize(t, config.lowercase) for t in texts), config)

    @classmethod
    def fit_tokens(cls, token_lists: Iterable[list[str]], config: TextConfig) -> TextPipeline:
        return cls(config, Vocabulary.build(token_lists, config.min_freq, config.max_vocab))


# -- reading only what truncation keeps ---------------------------------------------------------

_SPACE_RUN = re.compile(r"\s+")
_LAST_SPACE_RUN = re.compile(r"(?s:.*\S)?(\s+)")  # the last run of whitespace in a range
_MAX_TRIES = 16  # unsafe cuts skipped before giving up (then the whole text is tokenized)
# Whitespace inside one token is always followed by one of these: "8 /10", "3 out of 5",
# "five - stars", "4 stars" (a word before " stars" is not read alone either). Matched as
# TOKEN_RE matches, ignoring case.
_JOINS_NEXT = re.compile(r"[-/]|o[uf]|star", re.IGNORECASE)
_JOINS_DIGIT = re.compile(r"(?:/|of)\Z", re.IGNORECASE)  # "8/ 10", "3 out of 5": a scale follows
_DIGIT = re.compile(r"\d")


def _blank_breaks(text: str) -> str:
    """`text` with break tags blanked as the tokenizer blanks them (same length, same offsets)."""
    if "<" not in text:
        return text
    return BREAK_RE.sub(lambda m: " " * len(m.group()), text)


def _joins(cleaned: str, start: int, end: int) -> bool:
    """Whether the (maximal) whitespace run [start, end) of `cleaned` may lie inside a token."""
    if _JOINS_NEXT.match(cleaned, end):
        return True
    return bool(_DIGIT.match(cleaned, end)) and bool(_JOINS_DIGIT.search(cleaned, max(0, start - 2), start))


def _cut_after(cleaned: str, at: int) -> int:
    """The start of the first whole whitespace run at or after `at` that no token spans (or
    len(cleaned))."""
    if 0 < at < len(cleaned) and cleaned[at - 1].isspace():
        at = _SPACE_RUN.match(cleaned, at - 1).end()  # type: ignore[union-attr]  # not mid-run
    for _ in range(_MAX_TRIES):
        match = _SPACE_RUN.search(cleaned, at)
        if match is None:
            break
        if not _joins(cleaned, *match.span()):
            return match.start()
        at = match.end()
    return len(cleaned)


def _cut_before(cleaned: str, at: int, floor: int) -> int:
    """The end of the last whole whitespace run within (floor, at] that no token spans (or
    `floor`)."""
    if at < len(cleaned) and cleaned[at].isspace():
        at = _SPACE_RUN.match(cleaned, at).end()  # type: ignore[union-attr]  # not mid-run
    for _ in range(_MAX_TRIES):
        match = _LAST_SPACE_RUN.match(cleaned, floor, at)
        if match is None:
            break
        start, end = match.span(1)
        if start <= floor:
            break
        if not _joins(cleaned, start, end):
            return end
        at = start
    return floor


def tokenize_kept(text: str, config: TextConfig, chars_per_token: int = 8) -> list[str]:
    """`truncate(tokenize(text), ...)` with `config`'s settings, reading about as much of `text`
    as the kept tokens need: of a long review only a prefix (for the head) and a suffix (for
    the tail) are tokenized, each cut at a run of whitespace (break tags counted as such) that
    no token spans: tokens such as "3 out of 5" or "five stars" hold whitespace.

    A side with fewer tokens than it keeps is widened (doubling); once the two sides meet,
    the whole text is tokenized.
    """
    max_tokens = config.max_tokens
    head, tail = truncation_window(max_tokens + 1, max_tokens, config.head_fraction)
    size = len(text)
    reach_head, reach_tail = head * chars_per_token, tail * chars_per_token
    # Cuts are chosen in the text as the tokenizer sees it: a whitespace run there is whole, so
    # a break tag is never split and each side blanks its tags as the whole text would.
    cleaned = _blank_breaks(text) if reach_head + reach_tail < size else text
    while reach_head + reach_tail < size:
        prefix_end = _cut_after(cleaned, reach_head) if head else 0
        suffix_start = _cut_before(cleaned, size - reach_tail, prefix_end) if tail else size
        if suffix_start <= prefix_end:
            break
        first = tokenize(text[:prefix_end], config.lowercase) if head else []
        last = tokenize(text[suffix_start:], config.lowercase) if tail else []
        enough_head, enough_tail = len(first) >= head, len(last) >= tail
        # More than max_tokens in all (the middle only adds), so the text is truncated.
        if enough_head and enough_tail and len(first) + len(last) > max_tokens:
            return first[:head] + last[len(last) - tail :]
        if not enough_head or enough_tail:
            reach_head *= 2
        if not enough_tail or enough_head:
            reach_tail *= 2
    return truncate(tokenize(text, config.lowercase), max_tokens, config.head_fraction)
