"""The shipped model's validation rows, rebuilt with the training code's own split (issue 20).

Every review source in ../shared/data trained the shipped model except for a held-out 10 %
(seed 13; IMDB held out by movie): `config.json` records the command and the per-source counts.
`validation_rows()` re-reads each source exactly as `model.train.load_corpus` did
(`model.data.load_examples` + `model.train.split_examples`) and returns the validation part,
checking its size against the checkpoint's record, so nothing here was trained on. SST-5 dev is
a validation-only set (`--val-data`) and is returned whole. Star ratings (and IMDB's 1-10
rating, read from the file name) are attached, as the Example objects drop them.

    python -m bench.heldout [--data ../shared/data]   # prints the sizes and the check
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from model.checkpoint import DEFAULT_CHECKPOINT
from model.data import load_examples
from model.train import split_examples

DEFAULT_DATA = Path("../shared/data")
SEED, VAL_FRACTION = 13, 0.1  # the shipped run's (TrainConfig defaults, see config.json)
# source name (as config.json's "sources") -> file under the data folder
SOURCES = {
    "aclImdb_train": "aclImdb_train.tar.gz",
    "amazon_multidomain": "reviews/amazon_multidomain.tsv",
    "amazon_musical_instruments": "reviews/amazon_musical_instruments.tsv",
    "yelp_reviews": "reviews/yelp_reviews.tsv",
    "semeval_tweets_train": "reviews/semeval_tweets_train.tsv",
}
VALIDATION_ONLY = {"sst5_dev": "reviews/sst5_dev.tsv"}


@dataclass(frozen=True)
class Row:
    source: str
    text: str
    label: str  # negative / neutral / positive
    rating: int | None  # stars 1-5, SST-5 fine 0-4, IMDB 1-10
    domain: str  # product category where the source has one, else the source name


class SplitMismatch(RuntimeError):
    """The rebuilt validation part does not have the size the checkpoint recorded."""


def recorded_sizes(checkpoint: Path = DEFAULT_CHECKPOINT) -> dict[str, int]:
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    return {name: s["validation"] for name, s in config["metrics"]["sources"].items()}


def _ratings_tsv(path: Path) -> dict[str, list[int]]:
    """text -> ratings (stars or fine) of its rows, in file order."""
    out: dict[str, list[int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        column = next((c for c in ("stars", "fine") if c in (reader.fieldnames or [])), None)
        if column is None:
            return out
        for row in reader:
            value = (row.get(column) or "").strip().split(".")[0]
            if value.isdigit():
                out.setdefault(row["text"], []).append(int(value))
    return out


_IMDB_NAME_RE = re.compile(r"aclImdb/train/(pos|neg)/\d+_(\d+)\.txt$")


def _ratings_imdb(path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    with tarfile.open(path) as archive:
        for member in archive:
            m = _IMDB_NAME_RE.search(member.name)
            if m and member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    text = handle.read().decode("utf-8", errors="replace")
                    out.setdefault(text, []).append(int(m.group(2)))
    return out


def validation_rows(data: Path = DEFAULT_DATA, sources: list[str] | None = None,
                    check: bool = True) -> list[Row]:
    """The validation rows of `sources` (default: all), each source's size checked against
    the checkpoint unless `check` is False."""
    wanted = sources or [*SOURCES, *VALIDATION_ONLY]
    sizes = recorded_sizes()
    rows: list[Row] = []
    for name in wanted:
        if name in VALIDATION_ONLY:
            path = data / VALIDATION_ONLY[name]
            val, _ = load_examples(path, split="test")
        else:
            path = data / SOURCES[name]
            urls = data / "aclImdb_train_urls" if name == "aclImdb_train" else None
            examples, _ = load_examples(path, "auto", "train", None, None, False, urls)
            _, val = split_examples(examples, VAL_FRACTION, SEED)
            if check and len(val) != sizes.get(name):
                raise SplitMismatch(f"{name}: rebuilt {len(val)} validation rows, the checkpoint "
                                    f"recorded {sizes.get(name)}")
        ratings = _ratings_imdb(path) if name == "aclImdb_train" else _ratings_tsv(path)
        for e in val:
            found = ratings.get(e.text)
            rating = found[0] if found and len(set(found)) == 1 else None  # ambiguous duplicates: none
            rows.append(Row(name, e.text, e.label, rating, e.domain or name))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)
    rows = validation_rows(args.data)
    by_source: dict[str, list[Row]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    sizes = recorded_sizes()
    for name, part in by_source.items():
        ratings: dict[object, int] = {}
        for r in part:
            ratings[r.rating] = ratings.get(r.rating, 0) + 1
        order = sorted(ratings.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        shown = ", ".join(f"{k}: {v}" for k, v in order)
        print(f"{name}: {len(part)} validation rows (checkpoint: {sizes.get(name, 'val-only')}); "
              f"ratings {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
