"""bench.mixed's tables and its choice of k, on documents whose scores are written out."""

from __future__ import annotations

from bench import mixed
from bench.mixed import Doc, Scored

LABELS = ["negative", "neutral", "positive"]
SOURCE = next(iter(mixed.POLAR))


def docs(kind: str, n: int, probs: list[list[float]]) -> tuple[list[Doc], list[Scored]]:
    made = [Doc(kind, SOURCE, "d", "x. y.", [(0, 2), (3, 5)]) for _ in range(n)]
    return made, [Scored(probs, [3, 3]) for _ in made]


def test_the_adaptive_rule_flags_two_sided_documents_and_k_is_the_largest_within_limits() -> None:
    two, two_scores = docs("two-sided", 25, [[0.85, 0.0, 0.15], [0.15, 0.0, 0.85]])
    pair, pair_scores = docs("pair", 25, [[0.05, 0.0, 0.95], [0.1, 0.0, 0.9]])
    single, single_scores = docs("single", 25, [[0.9, 0.0, 0.1], [0.8, 0.1, 0.1]])
    all_docs, scored = two + pair + single, two_scores + pair_scores + single_scores
    # t(2) = 1 - k/2: 0.85 reaches it from k = 0.3 on (0.25 gives t = 0.875).
    per = mixed.by_source(all_docs, scored, LABELS, mixed.adaptive(0.25))
    assert per == [{"two-sided": (0, 25), "pair": (0, 25), "single": (0, 25)}]
    per = mixed.by_source(all_docs, scored, LABELS, mixed.adaptive(0.4))
    assert per == [{"two-sided": (25, 25), "pair": (0, 25), "single": (0, 25)}]
    assert mixed.choose_k(all_docs, scored, LABELS, 0.1, 0.1) == mixed.ADAPTIVE_K[-1]
    table = mixed.adaptive_table(all_docs, scored, LABELS)
    assert "| 0.25 | 0.0 / 0.0 / 0.0 |" in table and "| 0.4 | 100.0 / 0.0 / 0.0 |" in table
