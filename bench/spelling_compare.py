"""`python -m bench.spelling_compare`: the home-made spelling fallback (model/text.py,
`Vocabulary.spelling_neighbour`, one-edit symmetric delete) against symspellpy (a maintained
symmetric-delete library, cost bounded by a prefix length), on the shipped vocabulary: index
build time and memory, cost per unknown word, and how many generated typos each corrects back
to the word they came from. Measurement only; symspellpy is not a dependency of the service
(install it anywhere on PYTHONPATH to run this, e.g. `pip install --target /tmp/symspell
symspellpy` and PYTHONPATH=/tmp/symspell)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.checklist import statements, typo
from model.checkpoint import load_checkpoint
from model.text import UNK_ID, Vocabulary

REPO = Path(__file__).resolve().parent.parent
MIN_CORRECTED = 4  # model/text.py corrects alphabetic words of 4+ letters only


def home_lookup(vocab: Vocabulary) -> Callable[[str], str | None]:
    def lookup(word: str) -> str | None:
        vocab._corrections.clear()  # every word uncached, as a stream of new typos would be
        found = vocab.spelling_neighbour(word)
        return None if found == UNK_ID else vocab.tokens[found]

    return lookup


def symspell_lookup(vocab: Vocabulary, prefix_length: int) -> tuple[Callable[[str], str | None], Any]:
    from symspellpy import SymSpell, Verbosity

    sym = SymSpell(max_dictionary_edit_distance=1, prefix_length=prefix_length)
    n = len(vocab.tokens)
    for i, tok in enumerate(vocab.tokens):
        if len(tok) >= MIN_CORRECTED and tok.isalpha():
            sym.create_dictionary_entry(tok, n - i)  # ids ascend by frequency

    def lookup(word: str) -> str | None:
        if not (len(word) >= MIN_CORRECTED and word.isalpha()):
            return None
        found = sym.lookup(word, Verbosity.TOP, max_edit_distance=1)
        return found[0].term if found and found[0].distance > 0 else None

    return lookup, sym


def built(build: Callable[[], Any]) -> tuple[Any, float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def typos_of(words: list[str], seed: int, vocab: Vocabulary) -> list[tuple[str, str]]:
    """(typo, word): the behavioural suite's keyboard slips, kept where the slip is not itself
    a vocabulary word (a known word never reaches the fallback)."""
    rng = random.Random(seed)
    pairs = []
    for word in words:
        slipped = typo(word, rng)
        if slipped not in vocab.index:
            pairs.append((slipped, word))
    return pairs


def score(lookup: Callable[[str], str | None], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    right = wrong = none = 0
    times = []
    for slipped, word in pairs:
        started = time.perf_counter()
        found = lookup(slipped)
        times.append(time.perf_counter() - started)
        if found == word:
            right += 1
        elif found is None:
            none += 1
        else:
            wrong += 1
    return {
        "typos": len(pairs),
        "corrected": right,
        "wrong_word": wrong,
        "not_corrected": none,
        "us_per_word_median": round(1e6 * statistics.median(times), 1),
        "us_per_word_p99": round(1e6 * sorted(times)[int(0.99 * (len(times) - 1))], 1),
    }


def long_word_us(lookup: Callable[[str], str | None], word: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        lookup(word)
        times.append(time.perf_counter() - started)
    return round(1e6 * statistics.median(times), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "review-sentiment")
    parser.add_argument("--typos", type=int, default=400)
    parser.add_argument("--prefix-length", type=int, default=7, help="symspellpy's (its default: 7)")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    vocab = load_checkpoint(args.model_dir).pipeline.vocab

    _, home_build_s, home_bytes = built(vocab.prepare_spelling)
    (sym, _), sym_build_s, sym_bytes = built(lambda: symspell_lookup(vocab, args.prefix_length))
    home = home_lookup(vocab)

    corrigible = [t for t in vocab.tokens[2:] if len(t) >= MIN_CORRECTED and t.isalpha()]
    rng = random.Random(args.seed)
    common = rng.sample(corrigible[:10_000], args.typos)
    sentiment_words = sorted({w for p in ("positive", "negative") for _, w in statements(p)})
    suites = {
        f"{args.typos} frequent words": typos_of(common, args.seed, vocab),
        "the behavioural suite's sentiment words": typos_of(sentiment_words * 5, args.seed, vocab),
    }
    found: dict[str, Any] = {
        "vocabulary": {"tokens": len(vocab.tokens), "corrigible": len(corrigible)},
        "index": {
            "home": {"build_s": round(home_build_s, 3), "peak_mb": round(home_bytes / 2**20, 1)},
            f"symspellpy prefix {args.prefix_length}": {
                "build_s": round(sym_build_s, 3),
                "peak_mb": round(sym_bytes / 2**20, 1),
            },
        },
        "typos": {
            name: {"home": score(home, pairs), "symspellpy": score(sym, pairs)}
            for name, pairs in suites.items()
        },
        "long unknown word, us": {
            label: {"home": long_word_us(home, word), "symspellpy": long_word_us(sym, word)}
            for label, word in (("30 letters", "q" * 30), ("8,000 letters", "q" * 8000))
        },
    }
    sys.stdout.write(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
