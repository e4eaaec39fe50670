"""Compare architectures side by side on a short budget: python -m model.compare --data PATH.

Trains each variant (rnn/lstm/gru, uni/bi, final state vs pooling) on the same subset with the
same seed and budget, then measures validation accuracy, ECE and offline scoring speed, and
writes a markdown table and JSON (the model card quotes them).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

from model import train
from model.checkpoint import load_checkpoint
from model.data import load_examples
from model.predictor import Predictor
from model.rnn import Architecture

logger = logging.getLogger("model.compare")

# (cell, bidirectional, pooling): the lecture's plain RNN first, then the gated cells.
VARIANTS = [
    ("rnn", False, "last"),
    ("rnn", True, "maxmean"),
    ("lstm", False, "last"),
    ("lstm", True, "maxmean"),
    ("gru", False, "last"),
    ("gru", True, "last"),
    ("gru", True, "mean"),
    ("gru", True, "maxmean"),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.compare",
        description="Train each architecture variant on a short budget and tabulate the results.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="aclImdb dir or .tar.gz (or CSV/JSONL)")
    p.add_argument("--limit", type=int, default=6000, help="reviews used per variant")
    p.add_argument("--epochs", type=int, default=2, help="epochs per variant")
    p.add_argument("--hidden-dim", type=int, default=Architecture().hidden_dim,
                   help="hidden size per direction")
    p.add_argument("--max-tokens", type=int, default=400, help="truncation length")
    p.add_argument("--pretrain", default="none", choices=("none", "word2vec"),
                   help="embedding initialisation (shared cache across variants)")
    p.add_argument("--w2v-cache", default="", help="word2vec vectors file to reuse")
    p.add_argument("--speed-reviews", type=int, default=1000, help="reviews timed per variant")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="artifacts/comparison", help="output prefix (.md, .json)")
    p.add_argument("--only", default="", help="comma-separated variant indices to run")
    return p


def measure_speed(predictor: Predictor, texts: list[str]) -> float:
    predictor.predict_texts(texts[:64])  # warm-up
    started = time.perf_counter()
    predictor.predict_texts(texts)
    return len(texts) / (time.perf_counter() - started)


def run_variant(
    args: argparse.Namespace, cell: str, bidirectional: bool, pooling: str, texts: list[str]
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ckpt"
        architecture = Architecture(cell=cell, bidirectional=bidirectional, pooling=pooling,
                                    hidden_dim=args.hidden_dim)
        config = train.TrainConfig(
            data=[args.data], out=str(out), limit=args.limit, epochs=args.epochs, model=architecture,
            max_tokens=args.max_tokens, threads=args.threads, pretrain=args.pretrain, patience=9,
            w2v_cache=args.w2v_cache,
        )
        started = time.perf_counter()
        ckpt = train.train(config)
        seconds = time.perf_counter() - started
        speed = measure_speed(Predictor(load_checkpoint(out), batch_size=64), texts)
    val = ckpt.metrics["validation"]
    return {
        "cell": cell, "bidirectional": bidirectional, "pooling": pooling,
        "parameters": sum(p.numel() for p in ckpt.model.parameters()),
        "accuracy": val["accuracy"], "f1": val["f1"], "ece": val["ece_cross_fitted"],
        "train_seconds": round(seconds, 1), "reviews_per_s": round(speed),
    }


def to_markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    lines = [
        f"Each variant: {args.limit} reviews (90/10 split, seed 13), {args.epochs} epochs, "
        f"hidden {args.hidden_dim} per direction, max {args.max_tokens} tokens, embeddings: "
        f"{args.pretrain}; speed = offline reviews/s at {args.threads} torch threads.",
        "",
        "| cell | directions | summary | parameters | val accuracy | macro-F1 | ECE | "
        "train s | reviews/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {'bi' if r['bidirectional'] else 'uni'} | {r['pooling']} | "
            f"{r['parameters']:,} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['ece']:.4f} | "
            f"{r['train_seconds']} | {r['reviews_per_s']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    examples, _ = load_examples(args.data)
    texts = [e.text for e in examples[:: max(1, len(examples) // args.speed_reviews)]]
    texts = texts[: args.speed_reviews]
    chosen = [int(i) for i in args.only.split(",")] if args.only else range(len(VARIANTS))
    rows = []
    for index in chosen:
        cell, bidirectional, pooling = VARIANTS[index]
        logger.info("variant %d: %s %s %s", index, cell, bidirectional, pooling)
        rows.append(run_variant(args, cell, bidirectional, pooling, texts))
        Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
        Path(args.out + ".md").write_text(to_markdown(rows, args))
    print(to_markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
