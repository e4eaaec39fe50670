"""What capacity costs: offline scoring speed and checkpoint size per architecture, at one thread.

    python -m bench.capacity --data ../shared/data/aclImdb_train.tar.gz [--reviews 1000]

Each candidate (hidden size, layers, vocabulary size) is built with random weights over the
shipped model's text pipeline (speed does not depend on what the weights learnt) and scores the
same IMDB-length reviews through `Predictor` on ONNX Runtime with one thread, interleaved over
rounds so a busy machine slows every candidate alike. Accuracy needs training: the model card
puts these figures beside the trained runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

from model.checkpoint import Checkpoint, load_checkpoint
from model.data import load_examples
from model.predictor import Predictor
from model.rnn import SentimentRNN
from model.text import TextPipeline, Vocabulary

logger = logging.getLogger("bench.capacity")

# (hidden per direction, layers, vocabulary size)
CANDIDATES = [(64, 1, 40_000), (64, 1, 50_000), (80, 1, 50_000), (96, 1, 50_000), (128, 1, 50_000),
              (64, 2, 50_000)]


def candidate(base: Checkpoint, hidden: int, layers: int, vocab_size: int) -> Checkpoint:
    tokens = base.pipeline.vocab.tokens
    tokens = tokens[:vocab_size] + [f"<extra_{i}>" for i in range(vocab_size - len(tokens))]
    config = dataclasses.replace(base.model.config, hidden_dim=hidden, num_layers=layers,
                                 vocab_size=vocab_size)
    torch.manual_seed(0)
    return Checkpoint(model=SentimentRNN(config).eval(),
                      pipeline=TextPipeline(base.pipeline.config, Vocabulary(tokens)),
                      labels=base.labels, temperature=base.temperature)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="aclImdb dir or .tar.gz: the reviews scored")
    p.add_argument("--reviews", type=int, default=1000, help="reviews scored per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    examples, _ = load_examples(args.data)
    texts = [e.text for e in examples[:: max(1, len(examples) // args.reviews)]][: args.reviews]
    base = load_checkpoint(None)
    predictors = {c: Predictor(candidate(base, *c), batch_size=64) for c in CANDIDATES}
    speeds: dict[tuple[int, int, int], list[float]] = {c: [] for c in CANDIDATES}
    for _ in range(args.rounds):
        for c, predictor in predictors.items():
            predictor.predict_texts(texts[:64])  # warm-up: the ONNX session is built lazily
            started = time.perf_counter()
            predictor.predict_texts(texts)
            speeds[c].append(len(texts) / (time.perf_counter() - started))
    rows = []
    for (hidden, layers, vocab_size), predictor in predictors.items():
        model = predictor.checkpoint.model
        params = sum(t.numel() for t in model.parameters())
        rows.append({"hidden": hidden, "layers": layers, "vocab": vocab_size, "parameters": params,
                     "megabytes": round(params * 4 / 1e6, 1),
                     "reviews_per_s": round(statistics.median(speeds[(hidden, layers, vocab_size)]))})
    print("| hidden × directions | layers | vocabulary | parameters | size MB | reviews/s (1 thread) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['hidden']} × 2 | {r['layers']} | {r['vocab']:,} | {r['parameters']:,} | "
              f"{r['megabytes']} | {r['reviews_per_s']:,} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
