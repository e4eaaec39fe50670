"""The one text pipeline shared by training and serving: normalise, tokenize, map to ids, truncate.

Every step is deterministic and its settings travel inside the checkpoint, so the service
encodes a review exactly as training did.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"

# IMDB writes paragraph breaks as HTML; they are separators, never words.
BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Words (letters/digits, inner apostrophes kept: "don't") and the two punctuation marks
# that carry sentiment on their own.
TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[!?]")


@dataclass(frozen=True)
class TextConfig:
    lowercase: bool = True  # fold case before lookup
    max_tokens: int = 400  # longer reviews are truncated to this many tokens
    head_fraction: float = 0.25  # share of max_tokens kept from the start; the rest from the end
    min_freq: int = 2  # tokens seen fewer times in training become <unk>
    max_vocab: int = 30_000  # vocabulary size cap, special tokens included

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
        return cls(**data)


class Token(NamedTuple):
    text: str  # the normalised token, as looked up in the vocabulary
    start: int  # character span in the original, un-normalised text
    end: int


def _normalise_token(raw: str, lowercase: bool) -> str:
    token = unicodedata.normalize("NFKC", raw).replace("’", "'")
    return token.lower() if lowercase else token


def tokenize_with_spans(text: str, lowercase: bool = True) -> list[Token]:
    """Tokens with their character spans in `text` (spans index the original string)."""
    # Blank out <br /> with spaces of equal length so offsets stay those of the original.
    cleaned = BREAK_RE.sub(lambda m: " " * len(m.group()), text)
    return [
        Token(_normalise_token(m.group(), lowercase), m.start(), m.end())
        for m in TOKEN_RE.finditer(cleaned)
    ]


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """The token strings of `text`; identical to the texts of `tokenize_with_spans`."""
    cleaned = BREAK_RE.sub(" ", text)
    if cleaned.isascii():  # fast path: NFKC is the identity on ASCII and lower() keeps lengths
        if lowercase:
            cleaned = cleaned.lower()
        return TOKEN_RE.findall(cleaned)
    return [_normalise_token(m.group(), lowercase) for m in TOKEN_RE.finditer(cleaned)]


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

    def ids(self, tokens: list[str]) -> list[int]:
        get = self.index.get
        return [get(tok, UNK_ID) for tok in tokens]


@dataclass
class TextPipeline:
    config: TextConfig
    vocab: Vocabulary

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, truncated head+tail; at least one id (an empty text gives <unk>)."""
        return self.encode_tokens(tokenize(text, self.config.lowercase))

    def encode_tokens(self, tokens: list[str]) -> list[int]:
        """`encode` for text already tokenized with this pipeline's settings."""
        kept = truncate(tokens, self.config.max_tokens, self.config.head_fraction)
        return self.vocab.ids(kept) or [UNK_ID]

    def encode_with_spans(self, text: str) -> tuple[list[int], list[Token]]:
        """Like `encode`, plus the kept tokens with their spans in `text` (for explanations)."""
        tokens = truncate(
            tokenize_with_spans(text, self.config.lowercase),
            self.config.max_tokens,
            self.config.head_fraction,
        )
        return self.vocab.ids([t.text for t in tokens]), tokens

    @classmethod
    def fit(cls, texts: Iterable[str], config: TextConfig) -> TextPipeline:
        return cls.fit_tokens((tokenize(t, config.lowercase) for t in texts), config)

    @classmethod
    def fit_tokens(cls, token_lists: Iterable[list[str]], config: TextConfig) -> TextPipeline:
        return cls(config, Vocabulary.build(token_lists, config.min_freq, config.max_vocab))
