"""Score a file of reviews: python -m model.predict [--checkpoint DIR] FILE [--out OUT.jsonl].

FILE is plain text (one review per line), CSV or JSONL; the output is JSONL, one line per
review in input order: {"label", "confidence", "probabilities", "language", "readable"}, and
with `--sentences` also "sentences" and "mixed" (as the service answers `sentences: true`). A
review the model cannot read (another language, or too few words it knows: model/language.py)
has "readable": false and a "reason"; by default (`--unsupported-text flag`) its label,
confidence and probabilities are null, as the service answers it.

For a corpus too large for one machine (a Kubernetes Indexed Job, deploy/k8s/batch/):
`--shard I/N` scores reviews I, I+N, I+2N, ... and writes only those, each row carrying its
input position as "index"; `--merge PART...` puts the parts back into one file equal to an
unsharded run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.checkpoint import CheckpointError
from model.data import DataError, read_texts
from model.language import POLICIES, Policy, TextReader, present
from model.predictor import Predictor, add_backend_argument, prediction_row, sentence_summary
from model.sentences import split_sentences
from model.text import UNK_ID

logger = logging.getLogger("model.predict")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.predict",
        description="Score reviews from a file and write JSONL predictions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("file", nargs="?", help="reviews: .txt (one per line), .csv or .jsonl")
    p.add_argument("--shard", type=parse_shard, metavar="I/N",
                   help="score only every N-th review starting at I (0 <= I < N)")
    p.add_argument("--merge", nargs="+", metavar="PART", type=Path,
                   help="merge the --shard outputs PART... into --out instead of scoring")
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    p.add_argument("--format", default="auto", choices=("auto", "txt", "csv", "jsonl"),
                   help="input format")
    p.add_argument("--text-column", default="text", help="CSV/JSONL text field")
    p.add_argument("--out", default="-", help="output JSONL file ('-' = stdout)")
    p.add_argument("--batch-size", type=int, default=128, help="reviews per model call")
    add_backend_argument(p)
    p.add_argument("--unsupported-text", default="flag", choices=POLICIES,
                   help="a review the model cannot read: flag (label null), refuse (label null "
                   "and an error), score (labelled anyway); each is marked readable: false")
    p.add_argument("--sentences", action="store_true",
                   help="also score each sentence (\"sentences\": start, end, label, "
                   "confidence, probabilities) and say whether the review is \"mixed\", as the "
                   "service does with sentences=true")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def merge_parts(parts: list[Path]) -> list[dict]:
    """Rows of every part in input order, without the "index" field; a gap or a duplicate
    (a missing or repeated part) is an error."""
    rows: dict[int, dict] = {}
    for part in parts:
        with part.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                row = json.loads(line)
                index = row.pop("index", None)
                if not isinstance(index, int) or index in rows:
                    raise DataError(f"{part}:{number}: missing or repeated index {index!r}")
                rows[index] = row
    if sorted(rows) != list(range(len(rows))):
        missing = next(i for i in range(len(rows) + 1) if i not in rows)
        raise DataError(f"review {missing} is in no part: is a shard missing?")
    return [rows[i] for i in range(len(rows))]


def prediction_rows(
    predictor: Predictor,
    texts: list[str],
    progress: bool,
    policy: Policy = "flag",
    sentences: bool = False,
) -> list[dict]:
    """One row per text; every text is scored, and `policy` decides what is shown of one the
    model cannot read (as the service does, so a readable text's row never depends on it).
    `sentences`: each row also gets its sentences, scored alone, and `mixed`."""
    reader = TextReader(predictor.pipeline)
    encoded = [reader.encode(text) for text in texts]  # one tokenizing for ids and reading
    # A text with no token is scored as <unk>, as `Predictor.predict_texts` scores it.
    probs = predictor.predict_encoded([ids or [UNK_ID] for ids, _ in encoded], progress).tolist()
    predictions = [prediction_row(predictor.labels, p) for p in probs]
    if sentences:
        add_sentences(predictor, texts, predictions, progress)
    return [
        present(prediction, reading, policy)
        for (_, reading), prediction in zip(encoded, predictions, strict=True)
    ]


def add_sentences(predictor: Predictor, texts: list[str], predictions: list[dict], progress: bool) -> None:
    """Each prediction gains `sentences` (the whole text's, scored in length batches) and
    `mixed` (model/sentences.py's rule; null for a model without both polar labels)."""
    spans = [split_sentences(text) for text in texts]
    pieces = [text[a:b] for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans]
    probs = iter(predictor.predict_texts(pieces, progress=progress).tolist())
    for prediction, text_spans in zip(predictions, spans, strict=True):
        rows = [next(probs) for _ in text_spans]
        prediction.update(sentence_summary(predictor.labels, text_spans, rows))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.file is None) == (args.merge is None):
        parser.error("give either FILE or --merge PART...")
    try:
        rows = merge_parts(args.merge) if args.merge else score(args)
    except (CheckpointError, DataError, UnicodeDecodeError, OSError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    logger.info("%s %d reviews", "merged" if args.merge else "scored", len(rows))
    unreadable = sum(row.get("readable") is False for row in rows)
    if unreadable:
        logger.info("%d of them the model cannot read (readable: false)", unreadable)
    return 0


def score(args: argparse.Namespace) -> list[dict]:
    path = Path(args.file)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    texts = read_texts(path, args.format, args.text_column)
    predictor = Predictor.load(args.checkpoint, batch_size=args.batch_size, backend=args.backend)
    if args.shard is None:
        return prediction_rows(
            predictor, texts, not args.no_progress, args.unsupported_text, args.sentences
        )
    # A fixed stride over input positions: the same shard always gets the same reviews,
    # and the parts' sizes differ by at most one.
    index, count = args.shard
    positions = range(index, len(texts), count)
    rows = prediction_rows(
        predictor, [texts[i] for i in positions], not args.no_progress, args.unsupported_text,
        args.sentences,
    )
    return [{"index": i, **row} for i, row in zip(positions, rows, strict=True)]


if __name__ == "__main__":
    sys.exit(main())
