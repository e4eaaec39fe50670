"""Training examples for what review corpora rarely teach: negation, contrast, emoji and ratings.

Each generator takes labelled short phrases (e.g. SST-2's) and writes new labelled texts
whose label follows from a rule, not from a guess:

* negation: "<subject> <copula> not <phrase>", "i did n't find <subject> <phrase>", … take the
  opposite label of the phrase, and each stands beside its affirmative twin, so what changes
  the label is the negation itself;
* opinion verbs: "i would not recommend it" / "i did n't like it" are negative;
* contrast: in "A, but B" the clause after "but" decides;
* emoji, emoticons and ratings: a mark of known polarity, alone or after a phrase of the same
  label ("5/5", "👍", ":(").

Everything is drawn from a seeded `random.Random`, so the same phrases give the same examples.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from model.data import Example

NEG, POS = "negative", "positive"
SUBJECTS = (
    "it", "this", "the movie", "the film", "the story", "the product", "the phone", "the app",
    "the food", "the meal", "the service", "the staff", "the room", "the hotel", "the book",
    "the show", "the game", "the price", "the quality", "the battery", "the sound", "my order",
    "this place", "this restaurant", "the experience", "the delivery", "the update", "the seller",
)
COPULAS = ("is", "was", "seems", "looked", "felt", "is really", "was just", "turned out")
NEGATED = ("not", "n't", "never", "not at all", "hardly", "not really", "by no means")
# (affirmative, negated) frames: s subject, c copula, p phrase, neg a negation.
NEGATION_FRAMES = (
    ("{s} {c} {p}", "{s} {c} {neg} {p}"),
    ("{s} {c} {p}", "{s} {c} {neg} {p}"),
    ("i found {s} {p}", "i did n't find {s} {p}"),
    ("i would call {s} {p}", "i would n't call {s} {p}"),
    ("i think {s} {c} {p}", "i do n't think {s} {c} {p}"),
    ("everything about {s} was {p}", "nothing about {s} was {p}"),
    ("{s} {c} really {p}", "{s} {c} not exactly {p}"),
    ("{s} {c} as {p} as i hoped", "{s} {c} not as {p} as i hoped"),
)
OPINION_VERBS = (("like", "liked"), ("love", "loved"), ("enjoy", "enjoyed"),
                 ("recommend", "recommended"), ("trust", "trusted"), ("buy", "bought"))
NEGATED_FRAMES = (
    "i would not {verb} {obj}", "i would n't {verb} {obj}", "i do n't {verb} {obj}",
    "i did not {verb} {obj}", "i can not {verb} {obj}", "i could n't {verb} {obj}",
    "i ca n't say i {past} {obj}", "i will never {verb} {obj} again", "nobody should {verb} {obj}",
    "i do not {verb} {obj} at all", "i wo n't {verb} {obj}", "no one would {verb} {obj}",
)
AFFIRMED_FRAMES = (
    "i would {verb} {obj}", "i really {verb} {obj}", "i will {verb} {obj} again",
    "everyone should {verb} {obj}", "i can honestly say i {past} {obj}", "i do {verb} {obj}",
)
OBJECTS = ("it", "this", "them", "this one", "the product", "this place", "this film", "the app")
CONTRAST = ("{a} , but {b}", "{a} but {b}", "although {a} , {b}", "{a} ; however , {b}",
            "{a} , yet {b}", "even though {a} , {b}")
# Each mark must tokenize to a token of its own polarity: "a+" reads as the article `a` and
# "!" is emphasis of either polarity, so labelling them positive taught the model that
# everyday tokens are praise (tests/model/test_augment.py checks every mark).
MARKS = {
    POS: ("👍", "😀", "😃", "😄", "😊", "😍", "🥰", "❤", "💯", "👏", "🙂", "😁", "🤩", "⭐",
          ":)", ":-)", ":d", ";)", "<3", "=)", "10/10", "9/10", "5/5", "five stars", "5 stars",
          "4.5/5", "4 stars"),
    NEG: ("👎", "😡", "😠", "😞", "😢", "😭", "🤮", "🤢", "😒", "💩", "🙁", "☹", "😩", "😤",
          ":(", ":-(", ":'(", ">:(", "</3", "0/10", "1/10", "2/10", "1/5", "one star", "1 star",
          "zero stars", "2/5", "half a star"),
}


_DANGLING = frozenset(
    ["and", "or", "but", "the", "a", "an", "of", "to", "with", "for", "in", "on", "at", "as", "by",
     "from", "that", "its"]
)


def short_phrases(examples: list[Example], max_words: int) -> dict[str, list[str]]:
    """Phrases of at most `max_words` words, by label."""
    found: dict[str, list[str]] = {NEG: [], POS: []}
    for e in examples:
        words = e.text.split()
        # Fragments that start or end on punctuation are pieces of clauses, not phrases.
        if (e.label in found and 0 < len(words) <= max_words and words[0].isalpha()
                and words[-1].isalpha() and words[-1] not in _DANGLING):
            found[e.label].append(" ".join(words))
    return found


def negation_examples(phrases: dict[str, list[str]], n: int, rng: random.Random) -> list[Example]:
    """Negated phrases with the opposite label, each beside its affirmative twin.

    Two in three negate a positive phrase ("not great": negative); the rest a negative one
    ("not bad": positive, as SST-2 labels such phrases).
    """
    out = []
    for i in range(n // 2):
        label = NEG if i % 3 == 2 else POS
        affirmed, negated = rng.choice(NEGATION_FRAMES)
        fill = {"s": rng.choice(SUBJECTS), "c": rng.choice(COPULAS), "p": rng.choice(phrases[label]),
                "neg": rng.choice(NEGATED)}
        out.append(Example(affirmed.format(**fill), label))
        out.append(Example(negated.format(**fill), POS if label == NEG else NEG))
    return out


def opinion_examples(n: int, rng: random.Random) -> list[Example]:
    """'I would (not) recommend it' and kin: negated opinion verbs are negative."""
    out = []
    for _ in range(n):
        negated = rng.random() < 0.6
        frame = rng.choice(NEGATED_FRAMES if negated else AFFIRMED_FRAMES)
        verb, past = rng.choice(OPINION_VERBS)
        out.append(Example(frame.format(verb=verb, past=past, obj=rng.choice(OBJECTS)),
                           NEG if negated else POS))
    return out


def contrast_examples(phrases: dict[str, list[str]], n: int, rng: random.Random) -> list[Example]:
    """'A, but B' with A and B of opposite labels: the label is B's."""
    out = []
    for _ in range(n):
        last = rng.choice((NEG, POS))
        first = POS if last == NEG else NEG
        frame = rng.choice(CONTRAST)
        text = frame.format(a=rng.choice(phrases[first]), b=rng.choice(phrases[last]))
        out.append(Example(text, last))
    return out


def mark_examples(phrases: dict[str, list[str]], n: int, rng: random.Random) -> list[Example]:
    """An emoji, emoticon or rating alone or after a phrase of the same label."""
    out = []
    for _ in range(n):
        label = rng.choice((NEG, POS))
        mark = rng.choice(MARKS[label])
        roll = rng.random()
        if roll < 0.3:
            text = mark
        elif roll < 0.65:
            text = f"{rng.choice(phrases[label])} {mark}"
        else:  # a neutral subject: the mark alone must decide
            text = f"{rng.choice(SUBJECTS)} . {mark}"
        out.append(Example(text, label))
    return out


GENERATORS: dict[str, Callable[[dict[str, list[str]], int, random.Random], list[Example]]] = {
    "negation": negation_examples,
    "opinion": lambda _phrases, n, rng: opinion_examples(n, rng),
    "contrast": contrast_examples,
    "marks": mark_examples,
}


# Negation scopes over short predicates only; contrast and marks take longer clauses.
PHRASE_WORDS = {"negation": 2, "opinion": 1, "contrast": 8, "marks": 8}


_INTENSIFIERS = frozenset(["very", "so", "really", "truly", "pretty", "quite", "too", "most", "rather"])


def _predicative(phrase: str) -> bool:
    """A phrase that reads after "was": one word, or an intensifier or -ly adverb and a word."""
    words = phrase.split()
    return len(words) == 1 or (len(words) == 2 and (words[0] in _INTENSIFIERS or words[0].endswith("ly")))


def augment(examples: list[Example], n: int, seed: int) -> list[Example]:
    """About `n` rule-labelled examples, shared equally by the generators."""
    rng = random.Random(seed)
    out: list[Example] = []
    for name, generate in GENERATORS.items():
        phrases = short_phrases(examples, PHRASE_WORDS[name])
        if name == "negation":
            phrases = {label: [p for p in found if _predicative(p)] for label, found in phrases.items()}
        if phrases[NEG] and phrases[POS]:
            out += generate(phrases, max(1, n // len(GENERATORS)), rng)
    return out
