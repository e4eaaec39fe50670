"""Score a file of reviews: python -m model.predict [--checkpoint DIR] FILE [--out OUT.jsonl].

FILE is plain text (one review per line), CSV or JSONL; the output is JSONL, one line per
review in input order: {"label", "confidence", "probabilities"}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.checkpoint import CheckpointError
from model.data import DataError, read_texts
from model.predictor import Predictor

logger = logging.getLogger("model.predict")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.predict",
        description="Score reviews from a file and write JSONL predictions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("file", help="reviews: .txt (one per line), .csv or .jsonl")
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    p.add_argument("--format", default="auto", choices=("auto", "txt", "csv", "jsonl"),
                   help="input format")
    p.add_argument("--text-column", default="text", help="CSV/JSONL text field")
    p.add_argument("--out", default="-", help="output JSONL file ('-' = stdout)")
    p.add_argument("--batch-size", type=int, default=128, help="reviews per model call")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def prediction_rows(predictor: Predictor, texts: list[str], progress: bool) -> list[dict]:
    probs = predictor.predict_texts(texts, progress=progress).tolist()
    rows = []
    for p in probs:
        best = max(range(len(p)), key=p.__getitem__)
        rows.append({
            "label": predictor.labels[best],
            "confidence": p[best],
            "probabilities": dict(zip(predictor.labels, p, strict=True)),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    path = Path(args.file)
    try:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        texts = read_texts(path, args.format, args.text_column)
        predictor = Predictor.load(args.checkpoint, batch_size=args.batch_size)
    except (CheckpointError, DataError, UnicodeDecodeError) as exc:
        logger.error("%s", exc)
        return 2
    rows = prediction_rows(predictor, texts, progress=not args.no_progress)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    logger.info("scored %d reviews", len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
