"""Behavioural tests in the style of CheckList (Ribeiro et al., ACL 2020).

    python -m model.checklist [--checkpoint DIR] [--json]
    python -m service.checklist --url URL [--api-key KEY] [--json]   # a running service

Three kinds of test, each generated from templates x vocabularies:

- MFT (minimum functionality): one text, one expected answer ("The room was not clean." is
  negative).
- INV (invariance): a perturbation that must not flip the label (a typo in the sentiment
  word, upper case, a neutral sentence appended).
- DIR (directional): a perturbation that must move P(positive) one way, or at least not the
  other way by more than a tolerance (appending "It made my week." must not make a
  review less positive).

The suite is data (`Test` records built by `build_suite`); `run_suite` scores every distinct
text in one call of any scorer `Callable[[list[str]], list[...]]` returning each text's
probability per label (or just P(positive), read as a binary model), so the same suite runs
against a checkpoint (`PredictorScorer`) or a running service (service/checklist.py, on the
service's own client: model/ imports nothing of the service).

Any label set with `positive` and `negative` works. A label test (MFT) asks for the most probable
label; invariance and direction read the polar probability P(positive) / (P(positive) +
P(negative)), which is P(positive) itself for a binary model. A model with a `neutral` label
also gets the neutral-statement test ("The package arrived on Tuesday." is neutral), and
"neutral or positive" means its answer is not `negative`.

Generation is deterministic: each test samples its cases with its own `random.Random` seeded
from the suite seed and the test's name, so adding a test never changes the cases of another.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import random
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from model.checkpoint import CheckpointError
from model.predictor import Predictor

logger = logging.getLogger("model.checklist")

Kind = Literal["MFT", "INV", "DIR"]
Probs = dict[str, float]  # probability per label
# texts -> each text's probabilities (or P(positive) alone: a binary model), in input order
Scorer = Callable[[list[str]], Sequence[Probs] | Sequence[float]]
BINARY_LABELS = ("negative", "positive")
Case = tuple[str, ...]  # MFT: (text,); INV and DIR: (original, perturbed)

DEFAULT_SEED = 14
DEFAULT_MAX_CASES = 120  # per test: a rate to about ±4 points (s.e. at 20%) in seconds
DIR_TOLERANCE = 0.1  # CheckList's tolerance for binary models
# CheckList reads a binary model's P(positive) in [1/3, 2/3] as "neutral"; a negated negative
# ("The room was not dirty.") must be neutral or positive, i.e. P(negative) <= 2/3.
NEUTRAL_BAND = (1 / 3, 2 / 3)
EXAMPLES_KEPT = 3


class ChecklistError(RuntimeError):
    """The suite could not be scored (unreachable service, bad answer, bad checkpoint)."""


# -- expectations: what a case must satisfy, given P(positive) of each of its texts ------------


class Expectation(Protocol):
    def failed(self, probs: Sequence[Probs]) -> bool: ...

    def describe(self, case: Case, probs: Sequence[Probs]) -> str: ...


def _label(probs: Probs) -> str:
    """The most probable label; a tie with `positive` goes to it (P(positive) >= 0.5 is
    positive, as a binary model's threshold)."""
    best = max(probs.values())
    return "positive" if probs.get("positive") == best else max(probs, key=probs.__getitem__)


def _polar(probs: Probs) -> float:
    """P(positive) among the two polar labels: P(positive) itself for a binary model."""
    total = probs["positive"] + probs["negative"]
    return probs["positive"] / total if total > 0 else 0.5


def _side(probs: Probs) -> str:
    return "positive" if _polar(probs) >= 0.5 else "negative"


def _shown(probs: Probs) -> str:
    return ", ".join(f"{label} {p:.2f}" for label, p in probs.items())


@dataclass(frozen=True)
class ExpectLabel:
    """MFT: the text gets `label` (the most probable)."""

    label: str

    def failed(self, probs: Sequence[Probs]) -> bool:
        return _label(probs[0]) != self.label

    def describe(self, case: Case, probs: Sequence[Probs]) -> str:
        return f"{case[0]!r} -> {_shown(probs[0])}, expected {self.label}"


@dataclass(frozen=True)
class ExpectNotNegative:
    """MFT: the text is neutral or positive: not `negative` for a model with a neutral label;
    for a binary model, P(positive) at least the neutral band's floor."""

    floor: float = NEUTRAL_BAND[0]

    def failed(self, probs: Sequence[Probs]) -> bool:
        if "neutral" in probs[0]:
            return _label(probs[0]) == "negative"
        return probs[0]["positive"] < self.floor

    def describe(self, case: Case, probs: Sequence[Probs]) -> str:
        return f"{case[0]!r} -> {_shown(probs[0])}, expected neutral or positive"


@dataclass(frozen=True)
class ExpectSameLabel:
    """INV: the perturbed text stays on the original's side (positive or negative)."""

    def failed(self, probs: Sequence[Probs]) -> bool:
        return _side(probs[0]) != _side(probs[1])

    def describe(self, case: Case, probs: Sequence[Probs]) -> str:
        return f"{case[0]!r} {_polar(probs[0]):.2f} -> {case[1]!r} {_polar(probs[1]):.2f}"


@dataclass(frozen=True)
class ExpectMove:
    """DIR: the polar probability does not move against `direction` (+1 up, -1 down) by more
    than `tolerance`."""

    direction: Literal[1, -1]
    tolerance: float = DIR_TOLERANCE

    def failed(self, probs: Sequence[Probs]) -> bool:
        return (_polar(probs[1]) - _polar(probs[0])) * self.direction < -self.tolerance

    def describe(self, case: Case, probs: Sequence[Probs]) -> str:
        return f"{case[0]!r} {_polar(probs[0]):.2f} -> {case[1]!r} {_polar(probs[1]):.2f}"


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest class, whatever its name

    name: str
    kind: Kind
    cases: tuple[Case, ...]
    expectation: Expectation


# -- vocabularies: several domains, singular nouns so "The {thing} was ..." always agrees -------

THINGS = {
    "product": ["phone", "laptop", "blender", "vacuum cleaner", "charger", "jacket", "mattress"],
    "app": ["app", "latest update", "interface", "game", "search feature", "checkout page"],
    "restaurant": ["food", "pasta", "waiter", "dessert", "soup", "coffee", "menu"],
    "hotel": ["room", "bed", "reception", "breakfast", "pool", "view", "bathroom"],
    "film": ["film", "plot", "acting", "soundtrack", "ending", "script", "sequel"],
    "service": ["delivery", "support team", "repair", "installation", "courier", "refund process"],
}
ALL_THINGS = [thing for things in THINGS.values() for thing in things]

POSITIVE_ADJ = ["great", "excellent", "wonderful", "fantastic", "superb", "lovely", "good",
                "impressive", "brilliant", "outstanding", "amazing", "delightful", "perfect"]
NEGATIVE_ADJ = ["awful", "terrible", "horrible", "dreadful", "poor", "disappointing", "bad",
                "useless", "lousy", "appalling", "pathetic", "miserable", "atrocious"]
# "not perfect" is faint praise and "not poor" is odd English: only clear words get negated.
NEGATABLE_POSITIVE = [a for a in POSITIVE_ADJ if a != "perfect"]
NEGATABLE_NEGATIVE = ["awful", "terrible", "horrible", "bad", "disappointing", "dreadful", "lousy"]
# (past, base) forms of verbs of liking, for "I can't say I {past} it" / "I didn't {base} it".
LIKING_VERBS = [("liked", "like"), ("enjoyed", "enjoy"), ("loved", "love"),
                ("appreciated", "appreciate"), ("cared for", "care for")]

NEUTRAL_SENTENCES = [
    "I picked it up on a Tuesday.",
    "We went there with my sister.",
    "It came in a blue box.",
    "I read about it on a forum.",
    "My neighbour told me about it.",
    "We were there for two nights.",
    "I used it over the weekend.",
    "The weather was cloudy that day.",
    "I paid by card.",
    "This was my second visit.",
]
POSITIVE_SENTENCES = [
    "It made my week.", "Highly recommended!", "It exceeded my expectations.",
    "I would happily go back.", "Everything about it was a delight.", "Worth every penny.",
]
NEGATIVE_SENTENCES = [
    "It ruined my evening.", "Money down the drain.", "It was a huge letdown.",
    "I regret paying for it.", "Everything about it was a chore.", "Never again.",
]

# Statements of fact, and lukewarm verdicts: neither positive nor negative.
NEUTRAL_FRAMES = [
    "The {thing} arrived on {day}.",
    "I ordered the {thing} on {day}.",
    "It's a {thing}.",
    "The {thing} comes in {colour}.",
    "I bought the {thing} for my {person}.",
    "We tried the {thing} on {day}.",
    "The {thing} was okay.",
    "The {thing} is average.",
    "The {thing} does what it says.",
]
NEUTRAL_PLAIN = ["It's okay.", "It's fine.", "It does the job.", "The package arrived on Tuesday.",
                 "It's a phone.", "Nothing special, nothing bad.", "It is what it is."]
DAYS = ["Monday", "Tuesday", "Friday", "the weekend"]
COLOURS = ["black", "blue", "two sizes", "a cardboard box"]
PEOPLE = ["sister", "son", "office", "dad"]
# What app, shop and delivery customers write when something went wrong.
COMPLAINTS = [
    "The app keeps crashing after the last update.",
    "My order never arrived.",
    "Support never answered my emails.",
    "They charged me twice and still haven't refunded me.",
    "The item arrived broken and nobody replied.",
    "Delivery was a week late.",
    "The app logs me out every time I open it.",
    "Still no reply from customer service after ten days.",
    "The courier left my parcel in the rain.",
    "I was on hold for an hour and then they hung up.",
    "The update deleted all my saved data.",
    "Wrong size sent, and returning it costs more than it did.",
]
COMPLAINT_FRAMES = [
    "The {thing} stopped working after two days.",
    "The {thing} broke the first time I used it.",
    "I'm still waiting for a refund for the {thing}.",
    "They never replaced the faulty {thing}.",
]
# Negative without a single negative word.
POLITE_NEGATIVE_FRAMES = [
    "I expected more from the {thing}.",
    "The {thing} could have been better.",
    "Sadly, the {thing} didn't live up to the hype.",
    "I was hoping for more from the {thing}.",
    "Unfortunately the {thing} fell short.",
    "I'm afraid the {thing} wasn't for me.",
    "The {thing} was not what I hoped for.",
]

POSITIVE_RATINGS = ["10/10", "9/10", "5/5", "4.5/5", "five stars", "5 stars", "ten out of ten"]
NEGATIVE_RATINGS = ["0/10", "1/10", "2/10", "1/5", "one star", "1 star", "zero stars"]
POSITIVE_EMOJI = ["👍", "😍", "😊", "❤️", "🥰", ":)", ":-)", ":D", "<3"]
NEGATIVE_EMOJI = ["👎", "😡", "😠", "🤮", "😞", ":(", ":-(", ":'("]

# -- generation ----------------------------------------------------------------------------


def _rng(seed: int, name: str) -> random.Random:
    # crc32, not hash(): Python salts str hashes per process, and the suite must not change.
    return random.Random(seed * 1_000_003 + zlib.crc32(name.encode()))


def fill(frames: Sequence[str], **vocab: Sequence[str]) -> list[str]:
    """Every frame filled with every combination of the vocabularies it names, in a fixed order."""
    texts = []
    for frame in frames:
        names = [n for n in vocab if "{" + n + "}" in frame]
        for values in itertools.product(*(vocab[n] for n in names)):
            texts.append(frame.format(**dict(zip(names, values, strict=True))))
    return texts


def sample(items: Sequence[Any], k: int, rng: random.Random) -> list[Any]:
    """At most k items, drawn without replacement, kept in their original order."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def typo(word: str, rng: random.Random) -> str:
    """One keyboard slip inside `word`: swap two adjacent letters, drop one, or double one.

    The first letter is kept (people rarely get it wrong), and the result always differs from
    the word.
    """
    if len(word) < 3:
        raise ValueError(f"{word!r}: too short for a typo")
    while True:
        i = rng.randrange(1, len(word) - 1)
        kind = rng.choice(("swap", "drop", "double"))
        if kind == "swap":
            slipped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            slipped = word[:i] + word[i + 1 :]
        else:
            slipped = word[:i] + word[i] + word[i:]
        if slipped != word:
            return slipped


STATEMENT_FRAMES = [
    "The {thing} was {adj}.",
    "I found the {thing} {adj}.",
    "Honestly, the {thing} is {adj}.",
    "This {thing} turned out to be {adj}.",
    "Overall the {thing} was really {adj}.",
    "In my opinion the {thing} is {adj}.",
]


def statements(polarity: str) -> list[tuple[str, str]]:
    """(text, sentiment word) pairs of plain statements of one polarity."""
    adjectives = POSITIVE_ADJ if polarity == "positive" else NEGATIVE_ADJ
    return [
        (frame.format(thing=thing, adj=adj), adj)
        for frame in STATEMENT_FRAMES
        for thing in ALL_THINGS
        for adj in adjectives
    ]


def _mft(name: str, texts: Sequence[str], expectation: Expectation, k: int, seed: int) -> Test:
    chosen = sample(texts, k, _rng(seed, name))
    return Test(name, "MFT", tuple((capitalize(t),) for t in chosen), expectation)


def _pairs(
    name: str, kind: Kind, pairs: Sequence[Case], expectation: Expectation, k: int, seed: int
) -> Test:
    return Test(name, kind, tuple(sample(pairs, k, _rng(seed, name))), expectation)


def simple_tests(k: int, seed: int) -> list[Test]:
    return [
        _mft(f"simple {p}", [t for t, _ in statements(p)], ExpectLabel(p), k, seed)
        for p in ("positive", "negative")
    ]


def negation_tests(k: int, seed: int) -> list[Test]:
    negated_positive = fill(
        [
            "The {thing} was not {adj}.",
            "The {thing} isn't {adj} at all.",
            "I didn't find the {thing} {adj}.",
            "Nothing about the {thing} was {adj}.",
            "I would not call the {thing} {adj}.",
            "The {thing} was far from {adj}.",
            "I don't think the {thing} is {adj}.",
        ],
        thing=ALL_THINGS,
        adj=NEGATABLE_POSITIVE,
    )
    negated_negative = fill(
        [
            "The {thing} was not {adj}.",
            "The {thing} wasn't {adj} at all.",
            "I didn't find the {thing} {adj}.",
            "Nothing about the {thing} was {adj}.",
            "I would not call the {thing} {adj}.",
        ],
        thing=ALL_THINGS,
        adj=NEGATABLE_NEGATIVE,
    )
    past = [p for p, _ in LIKING_VERBS]
    base = [b for _, b in LIKING_VERBS]
    not_recommend = fill(
        [
            "I would not recommend the {thing} to anyone.",
            "I wouldn't recommend this {thing}.",
            "Would I recommend the {thing}? No.",
            "I can't honestly say I {past} the {thing}.",
            "I did not {base} the {thing}.",
            "There is nothing to {base} about the {thing}.",
            "I never {past} the {thing}, sadly.",
        ],
        thing=ALL_THINGS,
        past=past,
        base=base,
    )
    return [
        _mft("negated positive", negated_positive, ExpectLabel("negative"), k, seed),
        _mft("negated negative", negated_negative, ExpectNotNegative(), k, seed),
        _mft("would not recommend", not_recommend, ExpectLabel("negative"), k, seed),
    ]


def rating_tests(k: int, seed: int) -> list[Test]:
    frames = ["{r}", "My verdict: {r}", "I give it {r}.", "{neutral} {r}", "{r} {neutral}"]
    tests = []
    for name, positive, negative in (
        ("ratings", POSITIVE_RATINGS, NEGATIVE_RATINGS),
        ("emoji and emoticons", POSITIVE_EMOJI, NEGATIVE_EMOJI),
    ):
        for polarity, marks in (("positive", positive), ("negative", negative)):
            texts = fill(frames, r=marks, neutral=NEUTRAL_SENTENCES)
            tests.append(_mft(f"{name} {polarity}", texts, ExpectLabel(polarity), k, seed))
    return tests


def contrast_tests(k: int, seed: int) -> list[Test]:
    frames = [
        "The {thing} was {first}, but all in all it was {second}.",
        "I expected the {thing} to be {first}, but it was {second}.",
        "I used to think the {thing} was {first}, but now I find it {second}.",
        "Some say the {thing} is {first}, but I thought it was {second}.",
        "The {thing} looked {first} at first, but it turned out {second}.",
    ]
    tests = []
    for polarity, first, second in (
        ("positive", NEGATIVE_ADJ, POSITIVE_ADJ),
        ("negative", POSITIVE_ADJ, NEGATIVE_ADJ),
    ):
        texts = fill(frames, thing=ALL_THINGS, first=first, second=second)
        tests.append(_mft(f"contrast, {polarity} after 'but'", texts, ExpectLabel(polarity), k, seed))
    return tests


def everyday_tests(k: int, seed: int, labels: Sequence[str]) -> list[Test]:
    """Complaints and polite negatives (any model); neutral statements (a model with a neutral
    label: a binary one has no right answer for them)."""
    things = fill(["{thing}"], thing=ALL_THINGS)
    complaints = COMPLAINTS + fill(COMPLAINT_FRAMES, thing=things)
    tests = [
        _mft("app, delivery and service complaints", complaints, ExpectLabel("negative"), k, seed),
        _mft("polite negatives", ["I expected more.", "Not what I hoped for.",
                                  *fill(POLITE_NEGATIVE_FRAMES, thing=things)],
             ExpectLabel("negative"), k, seed),
    ]
    if "neutral" in labels:
        neutral = NEUTRAL_PLAIN + fill(NEUTRAL_FRAMES, thing=things, day=DAYS, colour=COLOURS,
                                       person=PEOPLE)
        tests.append(_mft("neutral statements", neutral, ExpectLabel("neutral"), k, seed))
    return tests


def _base_texts() -> list[tuple[str, str]]:
    return statements("positive") + statements("negative")


def invariance_tests(k: int, seed: int) -> list[Test]:
    typo_rng = _rng(seed, "typo words")
    typos = [
        (text, text.replace(word, typo(word, typo_rng), 1))
        for text, word in _base_texts()
    ]
    upper = [(text, text.upper()) for text, _ in _base_texts()]
    neutral_rng = _rng(seed, "neutral sentences")
    appended = [
        (text, f"{text} {neutral_rng.choice(NEUTRAL_SENTENCES)}") for text, _ in _base_texts()
    ]
    return [
        _pairs("typo in the sentiment word", "INV", typos, ExpectSameLabel(), k, seed),
        _pairs("upper case", "INV", upper, ExpectSameLabel(), k, seed),
        _pairs("neutral sentence appended", "INV", appended, ExpectSameLabel(), k, seed),
    ]


def directional_tests(k: int, seed: int) -> list[Test]:
    bases = [t for t, _ in _base_texts()] + [
        capitalize(s) for s in fill(["the {thing} was {adj}.", "the {thing} arrived on time."],
                                    thing=ALL_THINGS, adj=["okay", "average"])
    ]
    moves: list[tuple[str, list[str], Literal[1, -1]]] = [
        ("positive sentence added", POSITIVE_SENTENCES, 1),
        ("negative sentence added", NEGATIVE_SENTENCES, -1),
    ]
    tests = []
    for name, sentences, direction in moves:
        pairs = [(b, f"{b} {s}") for b, s in itertools.product(bases, sentences)]
        tests.append(_pairs(name, "DIR", pairs, ExpectMove(direction), k, seed))
    return tests


def build_suite(
    seed: int = DEFAULT_SEED, max_cases: int = DEFAULT_MAX_CASES, labels: Sequence[str] = BINARY_LABELS
) -> list[Test]:
    """The whole suite for a model with `labels`: at most `max_cases` cases per test, the same
    for the same arguments."""
    return [
        *simple_tests(max_cases, seed),
        *negation_tests(max_cases, seed),
        *rating_tests(max_cases, seed),
        *contrast_tests(max_cases, seed),
        *everyday_tests(max_cases, seed, labels),
        *invariance_tests(max_cases, seed),
        *directional_tests(max_cases, seed),
    ]


# -- running ---------------------------------------------------------------------------------


@dataclass
class TestResult:
    __test__ = False

    name: str
    kind: Kind
    n: int
    failures: int
    examples: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.n if self.n else 0.0


@dataclass
class Report:
    model: str
    tests: list[TestResult]

    @property
    def n(self) -> int:
        return sum(t.n for t in self.tests)

    @property
    def failures(self) -> int:
        return sum(t.failures for t in self.tests)

    @property
    def overall_failure_rate(self) -> float:
        return self.failures / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tests": [
                {"name": t.name, "kind": t.kind, "n": t.n, "failures": t.failures,
                 "failure_rate": t.failure_rate, "examples": t.examples}
                for t in self.tests
            ],
            "overall_failure_rate": self.overall_failure_rate,
            "n": self.n,
            "model": self.model,
        }


def unique_texts(tests: Iterable[Test]) -> list[str]:
    return list(dict.fromkeys(text for test in tests for case in test.cases for text in case))


def score_all(tests: Sequence[Test], scorer: Scorer) -> dict[str, Probs]:
    """The probabilities of every distinct text of the suite, from one call of `scorer`."""
    texts = unique_texts(tests)
    probs = scorer(texts)
    if len(probs) != len(texts):
        raise ChecklistError(f"the scorer returned {len(probs)} scores for {len(texts)} texts")
    return dict(zip(texts, map(_as_probs, probs), strict=True))


def _as_probs(score: Probs | float) -> Probs:
    if isinstance(score, dict):
        missing = set(BINARY_LABELS) - set(score)
        if missing:
            raise ChecklistError(f"the model has no {sorted(missing)} label: {sorted(score)}")
        return {label: float(p) for label, p in score.items()}
    return {"negative": 1.0 - float(score), "positive": float(score)}


def evaluate_test(test: Test, scores: dict[str, Probs]) -> TestResult:
    result = TestResult(test.name, test.kind, len(test.cases), 0)
    for case in test.cases:
        probs = [scores[text] for text in case]
        if test.expectation.failed(probs):
            result.failures += 1
            if len(result.examples) < EXAMPLES_KEPT:
                result.examples.append(test.expectation.describe(case, probs))
    return result


def run_suite(tests: Sequence[Test], scorer: Scorer, model: str | None = None) -> Report:
    """Score and judge every case; `model` defaults to the scorer's `model` attribute, read
    after scoring (a service names its model in its answers)."""
    scores = score_all(tests, scorer)
    name = model if model is not None else str(getattr(scorer, "model", "unknown"))
    return Report(name, [evaluate_test(test, scores) for test in tests])


# -- scorers ---------------------------------------------------------------------------------


class PredictorScorer:
    """Probabilities from a loaded predictor, or from a checkpoint on disk (the shipped model
    when `source` is None)."""

    def __init__(self, source: str | Path | Predictor | None = None) -> None:
        self.predictor = source if isinstance(source, Predictor) else Predictor.load(source)
        self.model = self.predictor.checkpoint.model_id
        self.labels = list(self.predictor.labels)

    def __call__(self, texts: list[str]) -> list[Probs]:
        rows = self.predictor.predict_texts(texts).tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in rows]


# -- command line ----------------------------------------------------------------------------


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(report: Report) -> str:
    name_w = max(len("test"), *(len(t.name) for t in report.tests))
    lines = [
        f"model: {report.model}",
        f"{'test':<{name_w}}  type  {'n':>5}  {'fail':>5}  {'rate':>6}  example failure",
    ]
    for t in report.tests:
        example = _shorten(t.examples[0], 90) if t.examples else "-"
        lines.append(
            f"{t.name:<{name_w}}  {t.kind:<4}  {t.n:>5}  {t.failures:>5}  "
            f"{t.failure_rate:>6.1%}  {example}"
        )
    lines.append(
        f"{'overall':<{name_w}}        {report.n:>5}  {report.failures:>5}  "
        f"{report.overall_failure_rate:>6.1%}"
    )
    return "\n".join(lines)


def output(report: Report, as_json: bool) -> None:
    text = json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if as_json else format_table(report)
    sys.stdout.write(text + "\n")


def suite_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options of every run of the suite; the caller adds where the answers come from."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the case sampling")
    p.add_argument("--max-cases", type=int, default=DEFAULT_MAX_CASES, help="cases per test at most")
    p.add_argument("--fail-above", type=float, default=None,
                   help="exit 1 when the overall failure rate exceeds this fraction")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m model.checklist", "Behavioural tests (CheckList-style MFT/INV/DIR) "
                     "against a checkpoint (a running service: python -m service.checklist).")
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    return p


# The scorer a run uses, opened from the parsed arguments, with the labels it answers in.
OpenScorer = Callable[[argparse.Namespace], AbstractContextManager[tuple[Scorer, Sequence[str]]]]


@contextlib.contextmanager
def checkpoint_scorer(args: argparse.Namespace) -> Iterator[tuple[Scorer, Sequence[str]]]:
    scorer = PredictorScorer(args.checkpoint)
    yield scorer, scorer.labels


def run_cli(args: argparse.Namespace, open_scorer: OpenScorer) -> int:
    """Build the suite for the scorer's labels, run it, print the report; 2 when it cannot be
    scored, 1 when the failure rate is over --fail-above."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    if args.max_cases < 1:
        logger.error("--max-cases must be at least 1")
        return 2
    try:
        with open_scorer(args) as (scorer, labels):
            report = run_suite(build_suite(args.seed, args.max_cases, labels), scorer)
    except (CheckpointError, ChecklistError) as exc:
        logger.error("%s", exc)
        return 2
    output(report, args.json)
    if args.fail_above is not None and report.overall_failure_rate > args.fail_above:
        logger.error("overall failure rate %.3f > %.3f", report.overall_failure_rate, args.fail_above)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser().parse_args(argv), checkpoint_scorer)


if __name__ == "__main__":
    sys.exit(main())
