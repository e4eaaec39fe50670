"""Whether the model can read a text: the language it is in, and how many of its words the model
knows.

The model reads English. Two signals decide, each covering the other's blind spot:

* the language a detector names: CLD2 (`pycld2`, its model compiled into the wheel, ~4 µs per
  100 characters). Alone it is wrong on short English about one time in five (slang, names,
  "Loved it"), so it never flags a text on its own when the text is short and every word is one
  the model knows;
* the model's own signal: the share of the words it reads that its vocabulary does not know
  after the spelling fallback (`<unk>`). French with IMDB's vocabulary ("Ce film est une perte
  de temps") can score zero here, keyboard mash scores one.

A text is unreadable when the detector names another language and the model misses a word (or
the text is long enough for the detector to be trusted alone), or when the model misses at
least half of its words and the detector does not call them English. "Another language" means
most of the text, with under ENGLISH_ENOUGH of it English, even once its capitalised words (the
names CLD2 takes for Danish, say) are left out. Texts with no word at all
(emoji, ratings such as "5/5", ":)") are read: the model knows those signs.

Both signals read a bounded head of the text (READ_CHARS, READ_TOKENS), so the cost of a text
is bounded whatever its length (bench/language.py measures it). Thresholds were tuned on
bench/language_texts.py and checked on real short English (docs/language.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import pycld2

from model.text import UNK_ID, TextPipeline, tokenize_kept

logger = logging.getLogger("model.language")

Policy = Literal["flag", "refuse", "score"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
Reason = Literal["other_language", "unknown_words"]

MODEL_LANGUAGE = "en"
UNDETERMINED = "und"  # ISO 639-2: no language found (keyboard mash, or no words at all)
READ_CHARS = 256  # characters the detector reads: ~45 words, plenty to name a language
READ_TOKENS = 64  # tokens whose words make the model's signal (the same head, about)
UNKNOWN_SHARE = 0.5  # this share of unknown words, not English to the detector: unreadable
MIN_WORDS_DETECTOR_ALONE = 4  # shorter texts need an unknown word too before they are flagged
ENGLISH_ENOUGH = 0.3  # a text CLD2 finds this much English is not "another language"
UNSUPPORTED_TEXT = "unsupported_text"  # the error type of a refused text

# CLD2 refuses control characters, non-characters and lone surrogates (pycld2.error): they carry
# no language, so they become spaces before it reads.
_CLD2_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ud800-\udfff"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+\b")  # names, mostly (and German nouns: see detect)
# CLD2 still writes a few retired ISO 639-1 codes.
_RENAMED = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "un": UNDETERMINED}


@dataclass(frozen=True, slots=True)
class Reading:
    """What the reader made of one text."""

    language: str  # ISO 639-1 code; "en" for every text the model reads; "und" for none found
    readable: bool
    reason: Reason | None = None  # why not, when not readable
    unknown_share: float = 0.0  # share of the words read that the model does not know

    def message(self) -> str:
        """Why the text is not scored, in a sentence (for error messages and the page)."""
        if self.reason == "other_language":
            return (
                f"The model reads English only; this text looks like another language "
                f"({self.language})"
            )
        return "The model reads English only and recognises too few of this text's words"


READABLE_SIGNS = Reading(UNDETERMINED, True)  # no words, only signs the model reads


class Detected(NamedTuple):
    language: str  # ISO 639-1 code of the language most of the text is in, or "und"
    english: float  # share of the text CLD2 found English, 0..1 (a review quoting names, say)


def detect(text: str) -> Detected:
    """The language of the first READ_CHARS characters of `text`, and how much of them is
    English."""
    head = text[:READ_CHARS]
    found = _cld2(head)
    if found.language not in (MODEL_LANGUAGE, UNDETERMINED) and found.english < ENGLISH_ENOUGH:
        # CLD2 takes a run of names for a language (romanised Japanese ones read as Danish):
        # asked again without capitalised words, English around the names shows. Only texts
        # it first calls foreign pay for the second look.
        unnamed = _cld2(_CAPITALISED.sub(" ", head))
        if unnamed.language == MODEL_LANGUAGE or unnamed.english >= ENGLISH_ENOUGH:
            return Detected(MODEL_LANGUAGE, unnamed.english)
    return found


def _cld2(text: str) -> Detected:
    try:
        _, _, details = pycld2.detect(text)
    except (pycld2.error, UnicodeEncodeError):  # UnicodeEncodeError: a lone surrogate
        # Cleaned only when CLD2 refuses: scanning every text for those characters would cost
        # about as much as the detection.
        try:
            _, _, details = pycld2.detect(_CLD2_UNSAFE.sub(" ", text))
        except pycld2.error as exc:  # a guess is no reason to fail a request
            logger.debug("language detection failed: %s", exc)
            return Detected(UNDETERMINED, 0.0)
    code = str(details[0][1]).split("-")[0]
    english = sum(percent for _, found, percent, _ in details if found == MODEL_LANGUAGE) / 100
    return Detected(_RENAMED.get(code, code), english)


class TextReader:
    """Reads texts with a checkpoint's own pipeline and says whether its model can read them."""

    def __init__(self, pipeline: TextPipeline, detector: Callable[[str], Detected] = detect) -> None:
        self.pipeline = pipeline
        self.detect = detector  # another detector only to compare them (bench/language.py)

    def read(self, text: str) -> Reading:
        """Whether the model can read `text` (`encode` without the ids)."""
        return self.encode(text)[1]

    def encode(self, text: str) -> tuple[list[int], Reading]:
        """The ids the model reads ([] when the pipeline finds no token) and whether it can read
        them, from one tokenizing of the kept ends of `text` (`tokenize_kept`)."""
        tokens = tokenize_kept(text, self.pipeline.config)
        ids = self.pipeline.encode_tokens(tokens) if tokens else []
        return ids, self._judge(text, tokens, ids)

    def _judge(self, text: str, tokens: Sequence[str], ids: Sequence[int]) -> Reading:
        """Judges `text` from the tokens the pipeline kept and their ids (the same length: what
        `encode_tokens` of already-truncated tokens gives)."""
        head, head_ids = tokens[:READ_TOKENS], ids[:READ_TOKENS]
        words = sum(map(str.isalpha, head))
        unknown = 0
        if UNK_ID in head_ids:  # most English has no unknown word: skip the loop (C speed)
            unknown = sum(1 for t, i in zip(head, head_ids, strict=True) if i == UNK_ID and t.isalpha())
        if not words:
            return READABLE_SIGNS
        share = unknown / words
        language, english = self.detect(text)
        # Mostly another language; a text largely English (say, a review full of Japanese
        # names that CLD2 calls Danish) is read for its English part.
        foreign = language not in (MODEL_LANGUAGE, UNDETERMINED) and english < ENGLISH_ENOUGH
        if foreign and (unknown or words >= MIN_WORDS_DETECTOR_ALONE):
            return Reading(language, False, "other_language", share)
        if share >= UNKNOWN_SHARE and language != MODEL_LANGUAGE:
            return Reading(language, False, "other_language" if foreign else "unknown_words", share)
        return Reading(MODEL_LANGUAGE, True, None, share)


def present(prediction: dict[str, Any], reading: Reading, policy: Policy) -> dict[str, Any]:
    """One answer as clients see it: the prediction with its language, and for a text the model
    cannot read, per `policy`: "score" keeps the label (flagged `readable: false`), "flag"
    withholds label, confidence and probabilities (null), "refuse" also adds an error object.
    A readable text's prediction is passed on untouched."""
    if reading.readable:
        return {**prediction, "language": reading.language, "readable": True}
    answer = {**prediction, "language": reading.language, "readable": False, "reason": reading.reason}
    if policy == "score":
        return answer
    answer.update(label=None, confidence=None, probabilities=None)
    for withheld in ("explanation", "sentences", "mixed"):  # they would show the label
        answer.pop(withheld, None)
    if policy == "refuse":
        answer["error"] = {"type": UNSUPPORTED_TEXT, "message": reading.message()}
    return answer
