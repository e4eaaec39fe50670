"""python -m bench.language: language-identification libraries side by side, and the readability
rule of model/language.py measured.

    python -m bench.language compare            # the libraries on bench/language_texts.py
    python -m bench.language compare --real 5000   # + false-flag rate on real short English
    python -m bench.language readable --real 5000  # the shipped rule: false flags, catch rate
    python -m bench.language cost               # decode with and without detection (CPU)

Every library is optional: one that is not installed is reported as missing. "Real short
English" is read from ../shared/data (tweets, Yelp and Amazon reviews, SST-2 dev) at run time;
no row of it is stored in this repository.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.language_texts import ENGLISH, FOREIGN, GIBBERISH, HELD_OUT

logger = logging.getLogger("bench.language")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
# Short English from four sources; tweets are the hardest (names, hashtags, slang).
REAL_SOURCES = (
    ("reviews/semeval_tweets_train.tsv", 0.4),
    ("reviews/yelp_reviews.tsv", 0.2),
    ("reviews/amazon_multidomain.tsv", 0.2),
    ("sst2/dev.tsv", 0.2),
)
SHORT_CHARS = 160  # a tweet's length, about: what "short" means here

# text -> (ISO 639-1 code or "und", its confidence, the probability or share of English)
Detect = Callable[[str], tuple[str, float, float]]


def real_english(count: int, seed: int = 0) -> list[str]:
    """`count` short texts from the shared English corpora (read here, never stored)."""
    csv.field_size_limit(1 << 24)
    rng = random.Random(seed)
    texts: list[str] = []
    spare: list[str] = []  # what a source had beyond its share: tops up a smaller source
    for name, share in REAL_SOURCES:
        path = SHARED / name
        if not path.is_file():
            logger.warning("%s missing: skipped", path)
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(rows, None)
            short = [row[0] for row in rows if row and 0 < len(row[0]) <= SHORT_CHARS]
        rng.shuffle(short)
        take = round(count * share)
        texts += short[:take]
        spare += short[take:]
    rng.shuffle(spare)
    texts += spare[: max(0, count - len(texts))]
    rng.shuffle(texts)
    return texts[:count]


# -- the candidates ---------------------------------------------------------------------------

# The languages a restricted lingua detector chooses from: English, the languages that most
# often reach an English service, and one per script so that any script has a home.
RESTRICTED = (
    "ENGLISH", "GERMAN", "FRENCH", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "SWEDISH", "DANISH",
    "BOKMAL", "POLISH", "CZECH", "TURKISH", "FINNISH", "HUNGARIAN", "ROMANIAN", "INDONESIAN",
    "VIETNAMESE", "TAGALOG", "RUSSIAN", "UKRAINIAN", "GREEK", "ARABIC", "HEBREW", "PERSIAN",
    "HINDI", "BENGALI", "THAI", "CHINESE", "JAPANESE", "KOREAN", "LATIN",
)


def lingua_detector(mode: str) -> Detect:
    from lingua import Language, LanguageDetectorBuilder

    if mode.startswith("restricted"):
        builder = LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in RESTRICTED))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    if "low" in mode:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> tuple[str, float, float]:
        values = detector.compute_language_confidence_values(text)
        if not values or values[0].value == 0:
            return "und", 0.0, 0.0
        top = values[0]
        english = next((v.value for v in values if v.language == Language.ENGLISH), 0.0)
        return top.language.iso_code_639_1.name.lower(), float(top.value), float(english)

    return detect


def py3langid_detector() -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(text: str) -> tuple[str, float, float]:
        ranked = identifier.rank(text)
        code, probability = ranked[0]
        return str(code), float(probability), float(dict(ranked).get("en", 0.0))

    return detect


def pycld2_detector() -> Detect:
    import pycld2

    def detect(text: str) -> tuple[str, float, float]:
        try:
            reliable, _, details = pycld2.detect(text)
        except pycld2.error:
            return "und", 0.0, 0.0
        _, code, percent, _ = details[0]
        english = sum(p for _, c, p, _ in details if c == "en") / 100
        if code == "un":
            return "und", 0.0, english
        return code.split("-")[0], percent / 100 if reliable else percent / 200, english

    return detect


CANDIDATES: dict[str, Callable[[], Detect]] = {
    "lingua (high accuracy, 75 languages)": lambda: lingua_detector("all"),
    "lingua (low accuracy, 75 languages)": lambda: lingua_detector("all-low"),
    f"lingua (low accuracy, {len(RESTRICTED)} languages)": lambda: lingua_detector("restricted-low"),
    f"lingua (high accuracy, {len(RESTRICTED)} languages)": lambda: lingua_detector("restricted"),
    "py3langid": py3langid_detector,
    "pycld2": pycld2_detector,
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, real: list[str]) -> dict[str, Any]:
    """One candidate's accuracy on every set, cost per text and memory (peak RSS added)."""
    import numpy  # noqa: F401  # a worker has it loaded already (torch, ONNX Runtime): not the library's cost

    gc.collect()
    before = rss_mb()
    began = time.perf_counter()
    try:
        detect = CANDIDATES[name]()
        detect("warm up")
    except ImportError as exc:
        return {"name": name, "missing": str(exc)}
    load_s = time.perf_counter() - began
    memory = rss_mb() - before

    def english_share(texts: list[str] | tuple[str, ...]) -> float:
        return sum(detect(t)[0] == "en" for t in texts) / len(texts)

    foreign = [text for _, text in FOREIGN] + [t for lang, t in HELD_OUT if lang != "gibberish"]
    gibberish = list(GIBBERISH) + [t for lang, t in HELD_OUT if lang == "gibberish"]
    exact = sum(detect(t)[0] == lang for lang, t in FOREIGN + HELD_OUT if lang != "gibberish")
    timing_texts = list(ENGLISH) + foreign
    costs = []
    for _ in range(5):
        for text in timing_texts:
            start = time.perf_counter_ns()
            detect(text)
            costs.append(time.perf_counter_ns() - start)
    result = {
        "name": name,
        "english_kept": english_share(ENGLISH),
        "foreign_caught": 1 - english_share(foreign),
        "foreign_exact": exact / len(foreign),
        "gibberish_caught": 1 - english_share(gibberish),
        "us_per_text": statistics.median(costs) / 1000,
        "load_s": load_s,
        "rss_mb": memory,
    }
    if real:
        result["real_flagged"] = 1 - english_share(real)
    result.update(combined(detect, real))
    return result


def combined(detect: Detect, real: list[str]) -> dict[str, float]:
    """The rule of model/language.py with this detector in CLD2's place (and the shipped
    model's signal): share of each set flagged."""
    from model.checkpoint import load_checkpoint
    from model.language import UNDETERMINED, Detected, TextReader

    def code(text: str) -> Detected:
        found, _, english = detect(text)
        return Detected(UNDETERMINED if found in ("zxx", "un") else found, english)

    reader = TextReader(load_checkpoint(None).pipeline, code)

    def flagged(texts: list[str]) -> float:
        return sum(not reader.read(t).readable for t in texts) / len(texts)

    out = {
        "rule_english_flagged": flagged(list(ENGLISH)),
        "rule_tuning_caught": flagged([t for _, t in FOREIGN] + list(GIBBERISH)),
        "rule_held_out_caught": flagged([t for _, t in HELD_OUT]),
    }
    if real:
        out["rule_real_flagged"] = flagged(real)
    return out


def compare(real_count: int) -> list[dict[str, Any]]:
    """Every candidate in its own process, so that one's memory does not hide another's."""
    rows = []
    for name in CANDIDATES:
        out = subprocess.run(
            [sys.executable, "-m", "bench.language", "_one", name, "--real", str(real_count)],
            cwd=REPO, capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            rows.append({"name": name, "missing": out.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(out.stdout))
    return rows


def compare_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| library | alone: English kept | alone: real short English not `en` "
        "| alone: non-English caught (exact language) | alone: mash not `en` "
        "| with the model's signal: English / real flagged | with it: tuning / held-out caught "
        "| µs/text | memory (MB) | load (s) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if "missing" in r:
            lines.append(f"| {r['name']} | not installed: {r['missing']} |||||||||")
            continue
        real = f"{100 * r['real_flagged']:.1f} %" if "real_flagged" in r else "-"
        rule_real = f"{100 * r['rule_real_flagged']:.2f} %" if "rule_real_flagged" in r else "-"
        lines.append(
            f"| {r['name']} | {100 * r['english_kept']:.1f} % | {real} "
            f"| {100 * r['foreign_caught']:.0f} % ({100 * r['foreign_exact']:.0f} %) "
            f"| {100 * r['gibberish_caught']:.0f} % "
            f"| {100 * r['rule_english_flagged']:.1f} % / {rule_real} "
            f"| {100 * r['rule_tuning_caught']:.0f} % / {100 * r['rule_held_out_caught']:.0f} % "
            f"| {r['us_per_text']:.0f} | {r['rss_mb']:.0f} | {r['load_s']:.2f} |"
        )
    return "\n".join(lines)


# -- the shipped rule -------------------------------------------------------------------------


def readable_report(real_count: int, checkpoint: str | None) -> dict[str, Any]:
    from model.language import TextReader
    from model.predictor import Predictor

    predictor = Predictor.load(checkpoint)
    reader = TextReader(predictor.pipeline)

    def flagged(texts: list[str]) -> list[str]:
        return [t for t in texts if not reader.read(t).readable]

    report: dict[str, Any] = {}
    sets = {
        "english (hand-written)": list(ENGLISH),
        "foreign (tuning)": [t for _, t in FOREIGN],
        "gibberish (tuning)": list(GIBBERISH),
        "held out": [t for _, t in HELD_OUT],
    }
    if real_count:
        sets["real short English"] = real_english(real_count)
        imdb = SHARED / "aclImdb_train.tar.gz"
        if imdb.is_file():
            from bench.reviews import load_reviews

            sets["real IMDB reviews (any length)"] = load_reviews(imdb, 3000, seed=5).texts
    for name, texts in sets.items():
        hits = flagged(texts)
        report[name] = {"texts": len(texts), "flagged": len(hits)}
        if name.startswith(("english", "real")):
            report[name]["examples"] = hits[:40]
        else:
            report[name]["missed"] = [t for t in texts if t not in hits]
    return report


# -- cost -------------------------------------------------------------------------------------


def cost_report(checkpoint: str | None, rounds: int) -> dict[str, Any]:
    """CPU time of SentimentModel.decode on typical single reviews with detection (as served)
    and without (the pipeline alone, as before): alternating blocks of every review, so that
    load on the machine hits both alike. Blocks, not alternating calls: CLD2's tables push the
    tokenizer's data out of the cache, and a call right after the other variant would be
    charged for it (or spared it)."""
    from model.checkpoint import load_checkpoint
    from model.text import tokenize_kept
    from service.runtime.sentiment_model import SentimentModel

    served = SentimentModel(load_checkpoint(checkpoint))
    pipeline = served.checkpoint.pipeline
    reviews = _typical_reviews()

    def plain(text: str) -> list[int]:
        tokens = tokenize_kept(text, pipeline.config)
        return pipeline.encode_tokens(tokens) if tokens else []

    timings: dict[str, list[int]] = {"with": [], "without": []}
    for _ in range(rounds):
        for name, fn in (("with", served.decode), ("without", plain)):
            for _ in range(5):
                for text in reviews:
                    start = time.thread_time_ns()
                    fn(text)
                    timings[name].append(time.thread_time_ns() - start)
    median = {name: statistics.median(t) / 1000 for name, t in timings.items()}
    mean = {name: statistics.fmean(t) / 1000 for name, t in timings.items()}
    return {
        "reviews": len(reviews),
        "calls_each": len(timings["with"]),
        "mean_chars": statistics.mean(map(len, reviews)),
        "decode_us_without": {"median": median["without"], "mean": mean["without"]},
        "decode_us_with": {"median": median["with"], "mean": mean["with"]},
        "added_us_median": median["with"] - median["without"],
        "added_us_mean": mean["with"] - mean["without"],
    }


def _typical_reviews() -> list[str]:
    """100 typical single reviews (median length): real IMDB ones when the archive is here,
    else generated."""
    from bench.reviews import load_reviews, typical

    data = SHARED / "aclImdb_train.tar.gz"
    return typical(load_reviews(data if data.is_file() else None, 2000).texts, 100)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m bench.language")
    parser.add_argument("what", choices=("compare", "readable", "cost", "_one"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--real", type=int, default=0, help="real short English texts to read")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--rounds", type=int, default=10, help="cost: alternating rounds")
    args = parser.parse_args(argv)
    if args.what == "_one":
        print(json.dumps(measure(args.name, real_english(args.real) if args.real else [])))
    elif args.what == "compare":
        print(compare_table(compare(args.real)))
    elif args.what == "readable":
        print(json.dumps(readable_report(args.real, args.checkpoint), indent=1, ensure_ascii=False))
    else:
        print(json.dumps(cost_report(args.checkpoint, args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
