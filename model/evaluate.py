"""Evaluate a checkpoint: python -m model.evaluate [--checkpoint DIR] --data PATH [--data PATH ...].

Prints one row per labelled set (n, accuracy, macro-F1, macro recall, ECE over 15 bins, NLL),
optionally split by length band and by domain. A set labelled in fewer classes than the model
has (IMDB's two, for a negative/neutral/positive model) is scored on its own classes: binary
accuracy reads P(positive) against P(negative). With --json: for one --data the JSON object of
that set (keys accuracy, f1, recall, ece, n, nll, confusion_matrix, classes, labels, checkpoint,
by_length, by_domain); for several, a JSON list of rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import torch

from model.checkpoint import CheckpointError
from model.data import FORMATS, DataError, Example, load_examples
from model.metrics import classification_report, restrict_to_present, rows_by_key, rows_by_length
from model.predictor import Predictor, add_backend_argument
from model.text import tokenize
from model.train import source_name

logger = logging.getLogger("model.evaluate")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description="Score labelled reviews with a checkpoint and report its metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    p.add_argument("--data", action="append", required=True,
                   help="labelled set (repeat): aclImdb dir or .tar.gz, .csv, .tsv or .jsonl")
    p.add_argument("--format", default="auto", choices=FORMATS, help="input format")
    p.add_argument("--split", default="test", help="aclImdb split to read")
    p.add_argument("--text-column", default=None, help="CSV/TSV/JSONL text field (default: detected)")
    p.add_argument("--label-column", default=None, help="CSV/TSV/JSONL label field (default: detected)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad row")
    p.add_argument("--batch-size", type=int, default=128, help="reviews per model call")
    add_backend_argument(p)
    p.add_argument("--by-length", action="store_true", help="also rows per length band")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def evaluate_set(predictor: Predictor, path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Metrics of one labelled set: the classification report plus per-length rows."""
    examples, _ = load_examples(
        path, args.format, args.split, args.text_column, args.label_column, args.strict
    )
    unknown = sorted({e.label for e in examples} - set(predictor.labels))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not among the model's {predictor.labels}")
    report = score_examples(predictor, examples, progress=not args.no_progress)
    return {"set": source_name(path), **report, "labels": predictor.labels,
            "checkpoint": predictor.checkpoint.model_id}


def score_examples(predictor: Predictor, examples: list[Example], progress: bool = False) -> dict[str, Any]:
    """`classification_report` of `examples` plus `by_length` rows; each text tokenized once."""
    pipeline = predictor.pipeline
    tokens = [tokenize(e.text, pipeline.config.lowercase) for e in examples]
    logits = predictor.logits_encoded([pipeline.encode_tokens(t) for t in tokens], progress=progress)
    labels = torch.tensor([predictor.labels.index(e.label) for e in examples])
    logits, labels, classes = restrict_to_present(logits, labels)
    lengths = torch.tensor([len(t) for t in tokens])
    domains = [e.domain for e in examples]
    return {
        **classification_report(logits, labels, predictor.temperature),
        "classes": [predictor.labels[c] for c in classes],
        "by_length": rows_by_length(logits, labels, lengths, predictor.temperature),
        "by_domain": rows_by_key(logits, labels, domains, predictor.temperature),
    }


def print_table(rows: list[dict[str, Any]], by_length: bool) -> None:
    print(f"checkpoint {rows[0]['checkpoint']}")
    width = max(len("set"), *(len(r["set"]) for r in rows)) + (10 if by_length else 0)
    print(f"{'set':<{width}} {'n':>7} {'accuracy':>9} {'macro-F1':>9} {'recall':>7} {'ECE':>7} {'NLL':>7}")
    for row in rows:
        print(_line(row["set"], row, width))
        if by_length:
            for band, sub in row["by_length"].items():
                print(_line(f"  {band} tokens", sub, width))
        for domain, sub in row.get("by_domain", {}).items():
            print(_line(f"  {domain}", sub, width))


def _line(name: str, row: dict[str, Any], width: int) -> str:
    return (f"{name:<{width}} {row['n']:>7} {row['accuracy']:>9.4f} {row['f1']:>9.4f} "
            f"{row['recall']:>7.4f} {row['ece']:>7.4f} {row['nll']:>7.4f}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        predictor = Predictor.load(args.checkpoint, batch_size=args.batch_size, backend=args.backend)
        rows = [evaluate_set(predictor, path, args) for path in args.data]
    except (CheckpointError, DataError) as exc:
        logger.error("%s", exc)
        return 2
    if args.json:
        if len(rows) == 1:
            print(json.dumps(rows[0]))
        else:
            print(json.dumps([{k: v for k, v in r.items() if k != "confusion_matrix"} for r in rows]))
        return 0
    print_table(rows, args.by_length)
    return 0


if __name__ == "__main__":
    sys.exit(main())
