"""`tokenize_kept` reads only a prefix and a suffix of a long review; it must give exactly what
tokenizing the whole text and truncating gives, whatever the text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import text as text_module
from model.text import TextConfig, tokenize, tokenize_kept, truncate

# Pieces that stress the cut points: break tags (with spaces inside), apostrophes, markup,
# punctuation tokens, non-ASCII letters and spaces, combining marks, long words, and the
# tokens that hold whitespace or several signs: ratings ("8 / 10", "3 out of 5", "five
# stars", "4.5-star"), emoticons, emoji with skin tones, contractions.
PIECES = [
    "good", "Bad", "don't", "it’s", "'", "’", "<br />", "<br/>", "<BR   />", "<br", "/>", ">",
    "<", "<b>", "!", "?", "...", " ", "  ", "\n", "\t", "\u00a0", "\u3000", "\u200b", "é",
    "e\u0301", "ﬁlm", "Σ", "ΟΔΟΣ", "日本", "😀", "x" * 40, "a1_b2", "--", "\x1f",
    "8", "10", "4.5", "3", "12", "/", "/10", "8/10", "out", "OUT", "of", "Of", "five", "Ten",
    "stars", "star", "Stars", "ſtar", "-", "-star", ":", ":-)", ":)", ";)", ":(", "):", "(:",
    "<3", "</3", "=", ")", "(", "👍", "🏽", "\ufe0f", "n't", "doesn't", "'s", "it", "s",
]
pieces = st.lists(st.sampled_from(PIECES), max_size=400).map("".join)
# Words of ratings and faces between separators, so that cuts often fall inside "3 out of 5".
RATING_WORDS = ["3", "8", "4.5", "12", "five", "Ten", "out", "of", "/", "/10", "10", "5", "-",
                "stars", "Star", "ſtars", ":", ":)", ")", "(:", "good", "it's", "😀", "!"]
SEPARATORS = ["", " ", " ", " ", "  ", "\n", "<br />", " <br/> "]
spaced = st.lists(
    st.tuples(st.sampled_from(RATING_WORDS), st.sampled_from(SEPARATORS)), max_size=300
).map(lambda pairs: "".join(word + separator for word, separator in pairs))
configs = st.builds(
    TextConfig,
    max_tokens=st.integers(1, 40),
    head_fraction=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    lowercase=st.booleans(),
)


def whole(text: str, config: TextConfig) -> list[str]:
    return truncate(tokenize(text, config.lowercase), config.max_tokens, config.head_fraction)


@settings(max_examples=600, deadline=None)
@given(text=pieces, config=configs, chars_per_token=st.integers(1, 8))
def test_equal_to_tokenizing_the_whole_text(text: str, config: TextConfig, chars_per_token: int) -> None:
    assert tokenize_kept(text, config, chars_per_token) == whole(text, config)


@settings(max_examples=600, deadline=None)
@given(text=spaced, config=configs, chars_per_token=st.integers(1, 8))
def test_equal_when_ratings_hold_spaces(text: str, config: TextConfig, chars_per_token: int) -> None:
    assert tokenize_kept(text, config, chars_per_token) == whole(text, config)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), config=configs)
def test_equal_on_arbitrary_unicode(text: str, config: TextConfig) -> None:
    assert tokenize_kept(text, config, 1) == whole(text, config)


def test_a_tag_holding_a_long_run_of_spaces_is_not_cut() -> None:
    config = TextConfig(max_tokens=4, head_fraction=0.5)
    text = "one two <br" + " " * 600 + "/> three " + "word " * 50 + "<br" + " " * 600 + "> end"
    assert tokenize_kept(text, config, 1) == whole(text, config)


def test_long_review_reads_only_its_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TextConfig(max_tokens=400, head_fraction=0.25)
    text = "A slow film with a fine cast, but the ending drags on. " * 2000  # ~110k characters
    expected = whole(text, config)
    read: list[int] = []

    def counting(part: str, lowercase: bool = True) -> list[str]:
        read.append(len(part))
        return tokenize(part, lowercase)

    monkeypatch.setattr(text_module, "tokenize", counting)
    assert tokenize_kept(text, config) == expected
    assert sum(read) < 8 * config.max_tokens + 100, read  # ~3.2k characters of 110k


@pytest.mark.parametrize(
    "rating", ["8 / 10", "3 out of  5", "five stars", "4.5 - star", "Ten   Stars", "7/ 10", "2 /10"]
)
def test_a_rating_holding_spaces_is_not_cut(rating: str) -> None:
    # Every whitespace run of the rating is where a cut would first fall, for each side.
    config = TextConfig(max_tokens=4, head_fraction=0.5)
    for filler in range(1, 12):
        text = "word " * filler + rating + " word" * 20 + " " + rating + " end" * filler
        assert tokenize_kept(text, config, 1) == whole(text, config), text
