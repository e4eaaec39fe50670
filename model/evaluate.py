"""Evaluate a checkpoint: python -m model.evaluate [--checkpoint DIR] --data PATH [--json].

Prints accuracy, macro-F1, ECE (15 bins), the confusion matrix and n; with --json one JSON
object on stdout (keys accuracy, f1, ece, n, nll, confusion_matrix, labels).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch

from model.checkpoint import CheckpointError
from model.data import FORMATS, DataError, load_examples
from model.metrics import classification_report
from model.predictor import Predictor

logger = logging.getLogger("model.evaluate")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description="Score labelled reviews with a checkpoint and report its metrics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    p.add_argument("--data", required=True, help="aclImdb dir or .tar.gz, .csv or .jsonl file")
    p.add_argument("--format", default="auto", choices=FORMATS, help="input format")
    p.add_argument("--split", default="test", help="aclImdb split to read")
    p.add_argument("--text-column", default="text", help="CSV/JSONL text field")
    p.add_argument("--label-column", default="label", help="CSV/JSONL label field")
    p.add_argument("--strict", action="store_true", help="fail on the first bad row")
    p.add_argument("--batch-size", type=int, default=128, help="reviews per model call")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def evaluate(args: argparse.Namespace) -> dict[str, object]:
    predictor = Predictor.load(args.checkpoint, batch_size=args.batch_size)
    examples, _ = load_examples(
        args.data, args.format, args.split, args.text_column, args.label_column, args.strict
    )
    label_id = {name: i for i, name in enumerate(predictor.labels)}
    unknown = sorted({e.label for e in examples} - set(label_id))
    if unknown:
        raise DataError(
            f"{args.data}: labels {unknown} are not among the model's {predictor.labels}"
        )
    logits = predictor.logits_texts([e.text for e in examples], progress=not args.no_progress)
    labels = torch.tensor([label_id[e.label] for e in examples])
    report = classification_report(logits, labels, predictor.temperature)
    return {**report, "labels": predictor.labels, "checkpoint": predictor.checkpoint.model_id}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        result = evaluate(args)
    except (CheckpointError, DataError) as exc:
        logger.error("%s", exc)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"checkpoint  {result['checkpoint']}")
    print(f"n           {result['n']}")
    print(f"accuracy    {result['accuracy']:.4f}")
    print(f"macro-F1    {result['f1']:.4f}")
    print(f"ECE (15)    {result['ece']:.4f}")
    labels = result["labels"]
    assert isinstance(labels, list)
    width = max(len(str(label)) for label in labels) + 2
    print("confusion (rows true, columns predicted)")
    print(" " * width + "".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, result["confusion_matrix"], strict=True):  # type: ignore[call-overload]
        print(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
