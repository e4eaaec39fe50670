"""How fast a trained model adapts to a new domain: fine-tune on 0, 100, 300, 1,000 labels.

    python -m model.learning_curve --base DIR --data NEW_TRAIN --eval NEW_HELDOUT [--sizes ...]

For each size n, n labelled rows are drawn (seeded) from NEW_TRAIN, the base checkpoint is
fine-tuned on them (`model.train --init-from`, its defaults: lower learning rate, early
stopping on a held-out slice of the n rows, temperature refitted), and the result is scored on
NEW_HELDOUT, which no run trains or stops on. Size 0 is the base model as it is.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import load_checkpoint
from model.data import Example, load_examples
from model.evaluate import score_examples
from model.predictor import Predictor
from model.train import TrainConfig, train

logger = logging.getLogger("model.learning_curve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.learning_curve", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--base", required=True, help="checkpoint dir to adapt")
    p.add_argument("--data", required=True, help="labelled rows of the new domain to draw from")
    p.add_argument("--eval", required=True, help="held-out labelled rows of the new domain")
    p.add_argument("--sizes", default="0,100,300,1000", help="comma-separated label counts")
    p.add_argument("--seed", type=int, default=13, help="seed of the draws and the fine-tuning")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--finetune-lr", type=float, default=TrainConfig.finetune_lr,
                   help="learning rate of the fine-tuning runs")
    p.add_argument("--out", default="", help="write the rows as JSON here too")
    return p


def heldout_row(checkpoint_dir: Path | str, examples: list[Example]) -> dict[str, Any]:
    report = score_examples(Predictor(load_checkpoint(checkpoint_dir), batch_size=256), examples)
    return {k: report[k] for k in ("n", "accuracy", "f1", "ece", "nll")}


def write_csv(path: Path, examples: list[Example]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((e.text, e.label) for e in examples)


def curve(args: argparse.Namespace) -> list[dict[str, Any]]:
    pool, _ = load_examples(args.data)
    heldout, _ = load_examples(args.eval)
    random.Random(args.seed).shuffle(pool)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        if size == 0:
            row = heldout_row(args.base, heldout)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                labelled = Path(tmp) / "labels.csv"
                write_csv(labelled, pool[:size])
                out = Path(tmp) / "tuned"
                train(TrainConfig(data=[str(labelled)], out=str(out), init_from=args.base,
                                  val_fraction=0.2, epochs=10, patience=3, seed=args.seed,
                                  threads=args.threads, finetune_lr=args.finetune_lr))
                row = heldout_row(out, heldout)
        rows.append({"labels": size, **row, "seconds": round(time.perf_counter() - started, 1)})
        logger.info("%5d labels: accuracy %.4f, ECE %.4f (%.0fs)", size, row["accuracy"], row["ece"],
                    rows[-1]["seconds"])
    return rows


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = curve(args)
    print("| labels | accuracy | macro-F1 | ECE | fine-tuning s |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['labels']:,} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['ece']:.4f} | {r['seconds']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
