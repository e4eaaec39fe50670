"""Set the MIXED rule of issue 20 from held-out data: catch rate vs false-mixed rate.

A document is MIXED when it has a confidently positive and a confidently negative sentence.
This builds, from the shipped model's validation rows only (heldout.py):

* two-sided documents: a clearly negative review (1 star; IMDB 1/10; SST-5 "very negative")
  joined with a clearly positive one (5 stars; IMDB 10/10; SST-5 "very positive") of the same
  source and domain, in random order, each of at most --max-sentences sentences;
* one-sided pairs: two reviews of the same polarity, joined the same way (lengths match);
* one-sided singles: every clearly negative or positive review of two sentences or more;

splits each document with model/sentences.py, scores every sentence with the shipped
model, and tabulates for each rule and threshold t the share of two-sided documents called
MIXED (catch) and of one-sided ones (false-mixed), per source and macro-averaged. Rules:

* `max`:    max P(positive) >= t and max P(negative) >= t over the sentences (for t >= 0.5
            the same as "a sentence whose argmax label is positive with confidence >= t", and
            one negative);
* `minN`:   the same over sentences of at least N model tokens only.

    python -m bench.mixed --out bench/results/mixed.md    # from the repository root
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.heldout import DEFAULT_DATA, Row, validation_rows
from model import sentences
from model.predictor import Predictor
from model.sentences import MIXED_K, mixed_threshold, split_sentences
from model.text import tokenize

# source -> (negative ratings, positive ratings): "clearly" one-sided
POLAR = {
    "amazon_multidomain": ({1}, {5}),
    "amazon_musical_instruments": ({1}, {5}),
    "yelp_reviews": ({1}, {5}),
    "aclImdb_train": ({1}, {10}),
    "sst5_dev": ({0}, {4}),
}
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.875, 0.9, 0.925, 0.95, 0.975]
ISSUE_EXAMPLE = ("The battery died after two days and support never answered. "
                 "Shame, the screen is lovely.")
ONE_SIDED_EXAMPLES = [
    ("Ordered the blue one on Monday and it arrived Wednesday. The fabric is thick and soft. It "
     "fits my shoulders perfectly! Washed it twice, no shrinking at all. Already ordered a second "
     "one for my brother."),
    ("Checked in quickly and the room was ready early. The bed was comfortable and the sheets "
     "were fresh. Breakfast had plenty of choice. Staff remembered our names by day two. We will "
     "definitely stay here again."),
]


@dataclass
class Doc:
    kind: str  # "two-sided", "pair", "single"
    source: str
    domain: str
    text: str
    sentences: list[tuple[int, int]] = field(default_factory=list)
    fold: int = 0


# -- building documents ---------------------------------------------------------------------------


def polarity(row: Row) -> str | None:
    neg, pos = POLAR[row.source]
    return "negative" if row.rating in neg else "positive" if row.rating in pos else None


def join(a: str, b: str) -> str:
    a = a.rstrip()
    return f"{a} {b.lstrip()}"


def sample_pairs(left: list[Row], right: list[Row], k: int, rng: random.Random,
                 same: bool) -> list[tuple[Row, Row]]:
    """Up to `k` distinct pairs (distinct reviews within a pair; unordered when `same`)."""
    seen, out = set(), []
    budget = k * 20
    while len(out) < k and budget > 0 and left and right:
        budget -= 1
        i, j = rng.randrange(len(left)), rng.randrange(len(right))
        key = (min(i, j), max(i, j)) if same else (i, j)
        if (same and i == j) or key in seen:
            continue
        seen.add(key)
        out.append((left[i], right[j]))
    return out


def build_docs(rows: list[Row], split, max_sentences: int, per_domain: int,
               seed: int) -> list[Doc]:
    rng = random.Random(seed)
    pools: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    singles = []
    for row in rows:
        if row.source not in POLAR:
            continue
        side = polarity(row)
        if side is None:
            continue
        spans = split(row.text)
        if len(spans) <= max_sentences:
            pools[(row.source, row.domain, side)].append(row)
        if len(spans) >= 2:
            singles.append(Doc("single", row.source, row.domain, row.text, spans))
    docs: list[Doc] = []
    for source, domain in sorted({(s, d) for s, d, _ in pools}):
        neg, pos = pools[(source, domain, "negative")], pools[(source, domain, "positive")]
        for a, b in sample_pairs(neg, pos, per_domain, rng, same=False):
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            docs.append(Doc("two-sided", source, domain, join(first.text, second.text)))
        for pool in (neg, pos):
            for a, b in sample_pairs(pool, pool, per_domain // 2, rng, same=True):
                docs.append(Doc("pair", source, domain, join(a.text, b.text)))
    docs += singles
    for doc in docs:
        doc.sentences = doc.sentences or split(doc.text)
        doc.fold = rng.randrange(2)
    return docs


# -- scoring ----------------------------------------------------------------------------------------


@dataclass
class Scored:
    probs: list[list[float]]  # per sentence: P(label) in `labels` order
    tokens: list[int]  # per sentence: model tokens


def score_docs(predictor: Predictor, docs: list[Doc]) -> list[Scored]:
    texts = sorted({doc.text[a:b] for doc in docs for a, b in doc.sentences})
    probs = predictor.predict_texts(texts).tolist()
    table = dict(zip(texts, probs, strict=True))
    lengths = {t: len(tokenize(t, predictor.pipeline.config.lowercase)) for t in texts}
    return [Scored([table[doc.text[a:b]] for a, b in doc.sentences],
                   [lengths[doc.text[a:b]] for a, b in doc.sentences]) for doc in docs]


def mixed_score(scored: Scored, labels: Sequence[str], min_tokens: int = 0) -> float:
    """model.sentences.mixed_score over the sentences of >= min_tokens tokens (0 for fewer
    than two: one sentence is one-sided, as model.sentences.is_mixed says): the document is
    MIXED at threshold t exactly when this is >= t."""
    neg, pos = labels.index("negative"), labels.index("positive")
    kept = [p for p, n in zip(scored.probs, scored.tokens, strict=True) if n >= min_tokens]
    if len(kept) < 2:
        return 0.0
    return sentences.mixed_score([p[pos] for p in kept], [p[neg] for p in kept])


def is_mixed(scored: Scored, labels: Sequence[str], t: float, min_tokens: int = 0) -> bool:
    return mixed_score(scored, labels, min_tokens) >= t


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(score of a random positive > that of a random negative), ties counting half."""
    if not positives or not negatives:
        return float("nan")
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # mean 1-based rank of the tie block
        rank_sum += mid * sum(label for _, label in ranked[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


RULES = {"max": 0, "min4": 4, "min8": 8}


# -- tables -----------------------------------------------------------------------------------------


def rates(docs: list[Doc], scored: list[Scored], labels: Sequence[str], t: float | Callable[[Doc], float],
          min_tokens: int = 0, keep=lambda d: True) -> dict[str, tuple[int, int]]:
    """kind -> (documents called MIXED, documents) over the docs `keep` admits; `t` is the
    threshold, or a function giving each document's (the adaptive rule)."""
    threshold = t if callable(t) else (lambda d: t)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for doc, s in zip(docs, scored, strict=True):
        if keep(doc):
            out[doc.kind][0] += is_mixed(s, labels, threshold(doc), min_tokens)
            out[doc.kind][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def present(docs: list[Doc]) -> list[str]:
    """The sources that have documents, in POLAR order."""
    return [s for s in POLAR if any(d.source == s for d in docs)]


def by_source(docs, scored, labels, t, min_tokens: int = 0, keep=lambda d: True) -> list[dict]:
    """`rates` for each source present."""
    sources = present(docs)
    return [rates(docs, scored, labels, t, min_tokens, lambda d, s=s: d.source == s and keep(d))
            for s in sources]


def adaptive(k: float) -> Callable[[Doc], float]:
    """The shipped rule's threshold for each document: model.sentences.mixed_threshold."""
    return lambda d: mixed_threshold(len(d.sentences), k)


def rate_table(docs, first: str, rows: list[tuple[str, list[dict[str, tuple[int, int]]]]]) -> str:
    """One row per rule setting: catch / FM pairs / FM singles per source, then macro averages."""
    sources = present(docs)
    head = f"| {first} | " + " | ".join(f"{s} catch / FM pairs / FM singles" for s in sources) + \
        " | **macro catch** | **macro FM pairs** | **macro FM singles** |\n|---|" + \
        "---|" * (len(sources) + 3)
    lines = [head]
    for value, per in rows:
        cells = [f"{pct(r.get('two-sided'))} / {pct(r.get('pair'))} / {pct(r.get('single'))}" for r in per]
        lines.append(f"| {value} | " + " | ".join(cells) +
                     f" | **{100 * macro(per, 'two-sided'):.1f}** | **{100 * macro(per, 'pair'):.1f}**"
                     f" | **{100 * macro(per, 'single'):.1f}** |")
    return "\n".join(lines) + "\n"


def pct(hit_n: tuple[int, int] | None) -> str:
    if not hit_n or not hit_n[1]:
        return "—"
    return f"{100 * hit_n[0] / hit_n[1]:.1f}"


MIN_DOCS = 20  # a source with fewer documents of a kind is left out of that kind's macro average


def macro(per_source: list[dict[str, tuple[int, int]]], kind: str) -> float:
    vals = [r[kind][0] / r[kind][1] for r in per_source if r.get(kind) and r[kind][1] >= MIN_DOCS]
    return sum(vals) / len(vals) if vals else float("nan")


def source_table(docs, scored, labels, rule: str) -> str:
    rows = [(f"{t:g}", by_source(docs, scored, labels, t, RULES[rule])) for t in THRESHOLDS]
    return rate_table(docs, "t", rows)


def auc_table(docs, scored, labels) -> str:
    sources = present(docs)
    lines = ["| rule | " + " | ".join(f"{s} (pairs / singles)" for s in sources) + " |",
             "|---|" + "---|" * len(sources)]
    for rule, min_tokens in RULES.items():
        cells = []
        for src in sources:
            score = {k: [mixed_score(x, labels, min_tokens) for d, x in zip(docs, scored, strict=True)
                         if d.source == src and d.kind == k] for k in ("two-sided", "pair", "single")}
            a_p, a_s = auc(score["two-sided"], score["pair"]), auc(score["two-sided"], score["single"])
            cells.append(f"{a_p:.3f} / {a_s:.3f}" if a_s == a_s else f"{a_p:.3f} / —")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bands_table(docs, scored, labels, t: float, rule: str) -> str:
    bands = [(2, 3), (4, 6), (7, 10), (11, 20), (21, 10_000)]
    lines = ["| sentences | two-sided: n, catch % | one-sided pairs: n, FM % | one-sided singles: n, FM % |",
             "|---|---|---|---|"]
    for lo, hi in bands:
        cells = []
        for kind in ("two-sided", "pair", "single"):
            hits = [is_mixed(x, labels, t, RULES[rule]) for d, x in zip(docs, scored, strict=True)
                    if d.kind == kind and lo <= len(d.sentences) <= hi and d.source != "sst5_dev"]
            cells.append(f"{len(hits)}, {100 * sum(hits) / len(hits):.1f}" if hits else "0, —")
        lines.append(f"| {lo}-{hi if hi < 10_000 else '…'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def band_thresholds(docs, scored, labels, max_fm: float, rule: str = "max") -> str:
    """Per length band: the lowest t whose false-mixed rate (one-sided pairs and singles
    pooled, SST-5 left out) is within `max_fm`, and the catch there."""
    bands = [(2, 3), (4, 6), (7, 10), (11, 20), (21, 10_000)]
    lines = ["| sentences | t | one-sided n, FM % | two-sided n, catch % |", "|---|---:|---|---|"]
    for lo, hi in bands:
        inside = [(d, x) for d, x in zip(docs, scored, strict=True)
                  if lo <= len(d.sentences) <= hi and d.source != "sst5_dev"]
        one = [x for d, x in inside if d.kind in ("pair", "single")]
        two = [x for d, x in inside if d.kind == "two-sided"]
        for t in THRESHOLDS:
            fm = sum(is_mixed(x, labels, t, RULES[rule]) for x in one) / max(1, len(one))
            if fm <= max_fm:
                hit = sum(is_mixed(x, labels, t, RULES[rule]) for x in two)
                catch = f"{len(two)}, {100 * hit / len(two):.1f}" if two else "0, —"
                band = f"{lo}-{hi if hi < 10_000 else '…'}"
                lines.append(f"| {band} | {t:g} | {len(one)}, {100 * fm:.1f} | {catch} |")
                break
        else:
            lines.append(f"| {lo}-{hi if hi < 10_000 else '…'} | none | {len(one)}, — | |")
    return "\n".join(lines) + "\n"


ADAPTIVE_K = [0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5]


def adaptive_table(docs, scored, labels) -> str:
    rows = [(f"{k:g}", by_source(docs, scored, labels, adaptive(k))) for k in ADAPTIVE_K]
    return rate_table(docs, "k", rows)


def counts_table(docs: list[Doc]) -> str:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    sents: dict[tuple[str, str], int] = defaultdict(int)
    for d in docs:
        counts[(d.source, d.kind)] += 1
        sents[(d.source, d.kind)] += len(d.sentences)
    lines = ["| source | two-sided docs | one-sided pairs | one-sided singles | mean sentences "
             "(two-sided / pairs / singles) |", "|---|---:|---:|---:|---|"]
    for s in POLAR:
        n = [counts[(s, k)] for k in ("two-sided", "pair", "single")]
        if not any(n):
            continue
        m = " / ".join(f"{sents[(s, k)] / counts[(s, k)]:.1f}" if counts[(s, k)] else "—"
                       for k in ("two-sided", "pair", "single"))
        lines.append(f"| {s} | {n[0]} | {n[1]} | {n[2]} | {m} |")
    return "\n".join(lines) + "\n"


def choose(docs, scored, labels, rule: str, max_fm_pairs: float, max_fm_singles: float,
           keep=lambda d: True) -> tuple[float | None, float, float, float]:
    """The lowest t whose macro false-mixed rates are within the limits: (t, catch, fm pairs,
    fm singles), or None when no t is."""
    for t in THRESHOLDS:
        per = by_source(docs, scored, labels, t, RULES[rule], keep)
        fm_p, fm_s, catch = macro(per, "pair"), macro(per, "single"), macro(per, "two-sided")
        if fm_p <= max_fm_pairs and fm_s <= max_fm_singles:
            return t, catch, fm_p, fm_s
    return None, float("nan"), float("nan"), float("nan")


def explain(predictor: Predictor, split, text: str, t: float, k: float) -> str:
    spans = split(text)
    doc = Doc("example", "", "", text, spans)
    scored = score_docs(predictor, [doc])[0]
    labels = predictor.labels
    lines = ["| start | end | sentence | label | P(neg) | P(neu) | P(pos) |",
             "|---:|---:|---|---|---:|---:|---:|"]
    for (a, b), p in zip(spans, scored.probs, strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        shown = {lab: p[i] for i, lab in enumerate(labels)}
        lines.append(f"| {a} | {b} | {text[a:b]} | {labels[best]} | {shown['negative']:.3f} | "
                     f"{shown['neutral']:.3f} | {shown['positive']:.3f} |")
    whole = predictor.predict_texts([text])[0].tolist()
    score = mixed_score(scored, labels)
    t_n = mixed_threshold(len(spans), k)
    lines.append(f"\nWhole text: {labels[max(range(3), key=whole.__getitem__)]} "
                 f"({', '.join(f'{lab} {whole[i]:.3f}' for i, lab in enumerate(labels))}). "
                 f"Mixed score min(max P(pos), max P(neg)) = {score:.3f}: MIXED with fixed "
                 f"t = {t:g}: **{score >= t}**; with the adaptive rule (k = {k:g}, n = {len(spans)}, "
                 f"t = {t_n:.3f}): **{score >= t_n}**.")
    return "\n".join(lines) + "\n"


def choose_k(docs, scored, labels, max_fm_pairs: float, max_fm_singles: float) -> float | None:
    """The largest k in ADAPTIVE_K whose macro false-mixed rates are within the limits."""
    best = None
    for k in ADAPTIVE_K:
        per = by_source(docs, scored, labels, adaptive(k))
        if macro(per, "pair") <= max_fm_pairs and macro(per, "single") <= max_fm_singles:
            best = k
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--checkpoint", default=None, help="default: the shipped model")
    p.add_argument("--max-sentences", type=int, default=5, help="per review joined into a pair")
    p.add_argument("--per-domain", type=int, default=300, help="two-sided docs per source/domain "
                   "(and as many one-sided pairs)")
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--max-fm-pairs", type=float, default=0.10)
    p.add_argument("--max-fm-singles", type=float, default=0.10)
    p.add_argument("--threshold", type=float, default=None, help="t for the examples and the "
                   "per-length table (default: the chosen one)")
    p.add_argument("--k", type=float, default=None, help="k of the adaptive rule for the examples "
                   "(default: the chosen one)")
    p.add_argument("--out", type=Path, default=None, help="markdown report")
    p.add_argument("--dump", type=Path, default=None, help="per-document JSONL")
    args = p.parse_args(argv)

    split = split_sentences
    rows = validation_rows(args.data, sources=list(POLAR))
    docs = build_docs(rows, split, args.max_sentences, args.per_domain, args.seed)
    predictor = Predictor.load(args.checkpoint)
    scored = score_docs(predictor, docs)
    labels = predictor.labels

    parts = [f"### Documents (held-out rows only; model/sentences.py's splitter; reviews of at most "
             f"{args.max_sentences} sentences in pairs)\n\n" + counts_table(docs)]
    for rule in RULES:
        parts.append(f"### Rule `{rule}`: catch on two-sided / false-mixed (FM) on one-sided pairs "
                     f"/ FM on one-sided single reviews, % \n\n" + source_table(docs, scored, labels, rule))
    choice_lines = ["| rule | chosen on | t | catch % | FM pairs % | FM singles % | on the other fold: "
                    "catch / FM pairs / FM singles % |", "|---|---|---:|---:|---:|---:|---|"]
    for rule in RULES:
        t, c, fp, fs = choose(docs, scored, labels, rule, args.max_fm_pairs, args.max_fm_singles)
        choice_lines.append(f"| {rule} | all | {t} | {100 * c:.1f} | {100 * fp:.1f} | {100 * fs:.1f} | |")
        for fold in (0, 1):
            t, c, fp, fs = choose(docs, scored, labels, rule, args.max_fm_pairs, args.max_fm_singles,
                                  keep=lambda d, f=fold: d.fold == f)
            if t is None:
                choice_lines.append(f"| {rule} | fold {fold} | none | | | | |")
                continue
            other = by_source(docs, scored, labels, t, RULES[rule], lambda d, f=fold: d.fold != f)
            choice_lines.append(
                f"| {rule} | fold {fold} | {t} | {100 * c:.1f} | {100 * fp:.1f} | {100 * fs:.1f} | "
                f"{100 * macro(other, 'two-sided'):.1f} / {100 * macro(other, 'pair'):.1f} / "
                f"{100 * macro(other, 'single'):.1f} |")
    parts.append(f"### Lowest t with macro FM on pairs <= {100 * args.max_fm_pairs:.0f}% and on "
                 f"singles <= {100 * args.max_fm_singles:.0f}%\n\n" + "\n".join(choice_lines) + "\n")
    parts.append("### Separability without a threshold: ROC AUC of the mixed score, two-sided vs "
                 "one-sided pairs / singles\n\n" + auc_table(docs, scored, labels))
    t_rec = args.threshold or choose(docs, scored, labels, "max", args.max_fm_pairs,
                                     args.max_fm_singles)[0] or 0.9
    parts.append(f"### By number of sentences in the document (rule max, t = {t_rec}; SST-5 left out)\n\n"
                 + bands_table(docs, scored, labels, t_rec, "max"))
    parts.append(f"### A threshold per length band: lowest t with false-mixed <= "
                 f"{100 * args.max_fm_singles:.0f}% (rule max)\n\n"
                 + band_thresholds(docs, scored, labels, args.max_fm_singles))
    parts.append("### Rule `adaptive`: max rule with t = 1 - k/n for a document of n sentences "
                 "(within 0.5..0.99): catch / FM pairs / FM singles, %\n\n"
                 + adaptive_table(docs, scored, labels))
    k_rec = args.k or choose_k(docs, scored, labels, args.max_fm_pairs, args.max_fm_singles) or MIXED_K
    parts.append(f"Largest k with macro FM on pairs <= {100 * args.max_fm_pairs:.0f}% and on singles "
                 f"<= {100 * args.max_fm_singles:.0f}%: **k = {k_rec:g}**.\n")
    parts.append("### The issue's example\n\n" + explain(predictor, split, ISSUE_EXAMPLE, t_rec, k_rec))
    for i, example in enumerate(ONE_SIDED_EXAMPLES, 1):
        parts.append(f"### One-sided five-sentence review #{i}\n\n"
                     + explain(predictor, split, example, t_rec, k_rec))
    text = "\n".join(parts)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as out:
            for d, s in zip(docs, scored, strict=True):
                out.write(json.dumps({"kind": d.kind, "source": d.source, "domain": d.domain,
                                      "fold": d.fold, "text": d.text, "sentences": d.sentences,
                                      "probs": s.probs, "tokens": s.tokens}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
