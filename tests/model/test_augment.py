from model.augment import MARKS, NEG, POS, augment, negation_examples, short_phrases
from model.data import Example
from model.text import tokenize
from tests.conftest import NEUTRAL_WORDS

PHRASES = [Example(t, POS) for t in ("charming", "a delight", "well made", "funny and warm")] + [
    Example(t, NEG) for t in ("dull", "a mess", "badly acted", "boring and long")
]


def test_augment_is_deterministic_and_covers_every_rule() -> None:
    first, second = augment(PHRASES, 80, seed=3), augment(PHRASES, 80, seed=3)
    assert first == second and len(first) >= 70
    assert first != augment(PHRASES, 80, seed=4)
    texts = " | ".join(e.text for e in first)
    assert " not " in texts or " n't " in texts
    assert " but " in texts or "although" in texts or "however" in texts
    assert "recommend" in texts or "like" in texts or "love" in texts


def test_negation_flips_the_label_and_keeps_the_affirmative_twin() -> None:
    import random

    pairs = negation_examples(short_phrases(PHRASES, 2), 30, random.Random(0))
    labels = {POS: NEG, NEG: POS}
    for affirmative, negated in zip(pairs[::2], pairs[1::2], strict=True):
        assert negated.label == labels[affirmative.label]
        # the same phrase at the end, and a negation the affirmative lacks
        assert negated.text.split()[-1] == affirmative.text.split()[-1]
        negations = {"not", "n't", "never", "hardly", "nothing", "no"}
        assert negations & set(negated.text.split()) and not negations & set(affirmative.text.split())
    assert {a.label for a in pairs[::2]} == {POS, NEG}  # positive and negative phrases negated


def test_marks_tokenize_to_tokens_the_model_can_learn() -> None:
    # A mark teaches its label only through a token that carries it: not a word or punctuation
    # mark that neutral text is full of, and not a token the other label's marks give.
    everyday = set(tokenize(" ".join(NEUTRAL_WORDS) + " . , ! ? ; : - ' ( )"))
    given = {label: {token for mark in marks for token in tokenize(mark)} for label, marks in MARKS.items()}
    without_a_cue = []
    for label, marks in MARKS.items():
        others = set().union(*(tokens for other, tokens in given.items() if other != label))
        without_a_cue += [
            f"{mark!r} ({label}) -> {tokenize(mark)}"
            for mark in marks
            if not set(tokenize(mark)) - everyday - others
        ]
    assert not without_a_cue
    assert tokenize("5/5") == ["<rating_5>"] and tokenize("0/10") == ["<rating_1>"]


def test_phrases_that_are_fragments_are_not_used() -> None:
    found = short_phrases([Example("and the", POS), Example(", fine", POS), Example("fine", POS)], 3)
    assert found[POS] == ["fine"]
