"""Train a SentimentRNN: python -m model.train --data PATH --out DIR [options].

Seeded and reproducible; validation split carved with a fixed seed; early stopping on
validation loss keeping the best weights; gradient clipping; softmax temperature fitted on
the validation split; metrics and a training-curve PNG written with the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import Checkpoint, save_checkpoint
from model.data import FORMATS, DataError, Example, load_examples, read_aclimdb_unlabelled
from model.metrics import classification_report, expected_calibration_error, fit_temperature
from model.rnn import (
    CELLS,
    POOLINGS,
    ModelConfig,
    SentimentRNN,
    format_parameter_summary,
    pad_batch,
)
from model.text import TextConfig, TextPipeline, tokenize

logger = logging.getLogger("model.train")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="aclImdb dir or .tar.gz, .csv or .jsonl file")
    data.add_argument("--format", default="auto", choices=FORMATS, help="input format")
    data.add_argument("--split", default="train", help="aclImdb split to train on")
    data.add_argument("--text-column", default="text", help="CSV/JSONL text field")
    data.add_argument("--label-column", default="label", help="CSV/JSONL label field")
    data.add_argument("--strict", action="store_true", help="fail on the first bad row")
    data.add_argument("--val-fraction", type=float, default=0.1, help="held-out validation share")
    data.add_argument("--limit", type=int, default=0, help="use only N examples (0 = all)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")

    text = p.add_argument_group("text pipeline")
    text.add_argument("--max-tokens", type=int, default=400, help="truncate reviews to N tokens")
    text.add_argument("--head-fraction", type=float, default=0.25, help="share kept from the start")
    text.add_argument("--min-freq", type=int, default=2, help="min token count for the vocabulary")
    text.add_argument("--max-vocab", type=int, default=30_000, help="vocabulary size cap")
    text.add_argument("--no-lowercase", action="store_true", help="keep letter case")

    arch = p.add_argument_group("architecture")
    arch.add_argument("--cell", default="gru", choices=sorted(CELLS), help="recurrent cell")
    arch.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    arch.add_argument("--embed-dim", type=int, default=128, help="token vector size")
    arch.add_argument("--hidden-dim", type=int, default=64, help="hidden state size per direction")
    arch.add_argument(
        "--bidirectional", action=argparse.BooleanOptionalAction, default=True, help="read both ways"
    )
    arch.add_argument("--pooling", default="maxmean", choices=POOLINGS, help="summary over time")
    arch.add_argument("--dropout", type=float, default=0.3, help="dropout before the classifier")
    arch.add_argument("--embed-dropout", type=float, default=0.2, help="dropout on token vectors")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=8, help="maximum epochs")
    opt.add_argument("--batch-size", type=int, default=64, help="reviews per step")
    opt.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    opt.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    opt.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    opt.add_argument("--patience", type=int, default=2, help="epochs without val improvement")
    opt.add_argument("--seed", type=int, default=13, help="random seed (data split and init)")
    opt.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    opt.add_argument("--time-budget", type=float, default=0, help="stop after N minutes (0 = none)")

    emb = p.add_argument_group("pre-trained word vectors")
    emb.add_argument(
        "--pretrain",
        default="none",
        choices=("none", "word2vec"),
        help="initialise embeddings with word2vec trained on the training texts "
        "(plus train/unsup when --data is aclImdb)",
    )
    emb.add_argument("--w2v-epochs", type=int, default=5, help="word2vec epochs")
    emb.add_argument("--w2v-cache", default="", help="file to reuse/save word2vec vectors")
    p.add_argument("--dry-run", action="store_true", help="one batch of everything, as a smoke test")
    return p


def split_examples(
    examples: list[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(examples) * val_fraction))
    return [examples[i] for i in order[n_val:]], [examples[i] for i in order[:n_val]]


def length_buckets(
    lengths: list[int], batch_size: int, rng: random.Random, shuffle: bool = True
) -> list[list[int]]:
    """Batches of similar length (less padding, faster steps), in random order."""
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    return batches


def _stable_hash(text: str) -> int:
    """gensim seeds each word vector with hashfxn; Python's own str hash changes per process."""
    return zlib.crc32(text.encode("utf-8"))


def pretrain_word2vec(
    sentences: list[list[str]], pipeline: TextPipeline, dim: int, epochs: int, seed: int, cache: str
) -> torch.Tensor | None:
    """Embedding rows from word2vec (skip-gram) for tokens in the vocabulary; None if unavailable."""
    try:
        from gensim.models import KeyedVectors, Word2Vec
    except ImportError:
        logger.warning("gensim is not installed (pip install '.[train]'): random embeddings")
        return None
    if cache and Path(cache).exists():
        vectors = KeyedVectors.load(cache)
        logger.info("word2vec vectors reused from %s", cache)
    else:
        started = time.perf_counter()
        w2v = Word2Vec(
            sentences, vector_size=dim, window=5, min_count=pipeline.config.min_freq, sg=1,
            negative=5, workers=torch.get_num_threads(), epochs=epochs, seed=seed,
            hashfxn=_stable_hash,
        )
        vectors = w2v.wv
        logger.info(
            "word2vec: %d sentences, %d words, %.0fs",
            len(sentences), len(vectors), time.perf_counter() - started,
        )
        if cache:
            vectors.save(cache)
    if vectors.vector_size != dim:
        logger.warning("cached vectors have %d dims, not %d: ignored", vectors.vector_size, dim)
        return None
    table = torch.randn(len(pipeline.vocab), dim) * 0.1
    table[0] = 0
    hits = 0
    for i, token in enumerate(pipeline.vocab.tokens[2:], start=2):
        if token in vectors.key_to_index:
            table[i] = torch.from_numpy(vectors[token].copy())
            hits += 1
    # Scale to the spread of a fresh nn.Embedding so learning rates behave the same.
    table[2:] = table[2:] / table[2:].std().clamp_min(1e-6) * 0.5
    logger.info("word2vec covers %d of %d vocabulary tokens", hits, len(pipeline.vocab) - 2)
    return table


@torch.no_grad()
def evaluate_logits(
    model: SentimentRNN, sequences: list[list[int]], batch_size: int
) -> torch.Tensor:
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = torch.empty(len(sequences), model.config.num_classes)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, lengths = pad_batch([sequences[i] for i in chunk])
        out[chunk] = model(ids, lengths)
    return out


def cross_fitted_ece(logits: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """ECE after temperature scaling, with T fitted on one half and measured on the other.

    Fitting and measuring on the same reviews would flatter the calibration.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    total = 0.0
    for fit_idx, test_idx in (halves, halves[::-1]):
        t = fit_temperature(logits[fit_idx], labels[fit_idx])
        probs = torch.softmax(logits[test_idx] / t, dim=1)
        total += expected_calibration_error(probs, labels[test_idx]) * len(test_idx)
    return total / len(labels)


def train(args: argparse.Namespace) -> Checkpoint:
    started = time.perf_counter()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)

    examples, report = load_examples(
        args.data, args.format, args.split, args.text_column, args.label_column, args.strict
    )
    logger.info(report.summary())
    if args.limit:
        examples = split_examples(examples, 0.0, args.seed)[0][: args.limit]
    if args.dry_run:
        examples = split_examples(examples, 0.0, args.seed)[0][: args.batch_size * 2]
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise DataError(f"{args.data}: need at least two labels, found {labels}")
    label_id = {name: i for i, name in enumerate(labels)}
    train_set, val_set = split_examples(examples, args.val_fraction, args.seed)
    logger.info("%d training and %d validation reviews; labels %s", len(train_set), len(val_set), labels)

    text_config = TextConfig(
        lowercase=not args.no_lowercase, max_tokens=args.max_tokens,
        head_fraction=args.head_fraction, min_freq=1 if args.dry_run else args.min_freq,
        max_vocab=args.max_vocab,
    )
    # Tokenize the training texts once: for the vocabulary, the ids and word2vec alike.
    train_tokens = [tokenize(e.text, text_config.lowercase) for e in train_set]
    pipeline = TextPipeline.fit_tokens(train_tokens, text_config)
    x_train = [pipeline.encode_tokens(tokens) for tokens in train_tokens]
    x_val = [pipeline.encode(e.text) for e in val_set]
    y_train = torch.tensor([label_id[e.label] for e in train_set])
    y_val = torch.tensor([label_id[e.label] for e in val_set])

    config = ModelConfig(
        vocab_size=len(pipeline.vocab), num_classes=len(labels), cell=args.cell,
        embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, num_layers=args.layers,
        bidirectional=args.bidirectional, pooling=args.pooling, dropout=args.dropout,
        embed_dropout=args.embed_dropout,
    )
    model = SentimentRNN(config)
    logger.info("parameters:\n%s", format_parameter_summary(model))

    if args.pretrain == "word2vec" and not args.dry_run:
        sentences = train_tokens
        if Path(args.data).suffix in (".gz", ".tgz", ".tar") or Path(args.data).is_dir():
            unsup = read_aclimdb_unlabelled(Path(args.data))
            sentences = sentences + [tokenize(t, text_config.lowercase) for t in unsup]
        table = pretrain_word2vec(
            sentences, pipeline, args.embed_dim, args.w2v_epochs, args.seed, args.w2v_cache
        )
        if table is not None:
            model.embedding.weight.data.copy_(table)
    del train_tokens

    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history = History()
    best: dict[str, Any] = {"val_loss": float("inf"), "epoch": 0, "state": None}
    rng = random.Random(args.seed)
    lengths = [len(s) for s in x_train]
    bad_epochs = 0
    epochs = 1 if args.dry_run else args.epochs
    for epoch in range(1, epochs + 1):
        model.train()
        batches = length_buckets(lengths, args.batch_size, rng)
        if args.dry_run:
            batches = batches[:1]
        seen = correct = 0
        loss_sum = 0.0
        epoch_start = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", file=sys.stderr)
        for batch in bar:
            ids, lens = pad_batch([x_train[i] for i in batch])
            target = y_train[batch]
            logits = model(ids, lens)
            loss = loss_fn(logits, target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimiser.step()
            seen += len(batch)
            correct += int((logits.argmax(1) == target).sum())
            loss_sum += float(loss.detach()) * len(batch)
            rate = seen / (time.perf_counter() - epoch_start)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", rev_s=f"{rate:.0f}")
        bar.close()
        val_logits = evaluate_logits(model, x_val, args.batch_size * 2)
        val = classification_report(val_logits, y_val)
        history.train_loss.append(loss_sum / seen)
        history.train_acc.append(correct / seen)
        history.val_loss.append(val["nll"])
        history.val_acc.append(val["accuracy"])
        logger.info(
            "epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0fs",
            epoch, loss_sum / seen, correct / seen, val["nll"], val["accuracy"],
            time.perf_counter() - epoch_start,
        )
        if val["nll"] < best["val_loss"]:
            best = {"val_loss": val["nll"], "epoch": epoch, "state": {
                k: v.detach().clone() for k, v in model.state_dict().items()}}
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= args.patience:
                logger.info("early stop: no validation improvement for %d epochs", bad_epochs)
                break
        if args.time_budget and time.perf_counter() - started > args.time_budget * 60:
            logger.info("time budget of %.0f minutes reached", args.time_budget)
            break

    model.load_state_dict(best["state"])
    model.eval()
    val_logits = evaluate_logits(model, x_val, args.batch_size * 2)
    before = classification_report(val_logits, y_val)
    temperature = fit_temperature(val_logits, y_val) if len(y_val) > 1 else 1.0
    after = classification_report(val_logits, y_val, temperature)
    ece_cross = cross_fitted_ece(val_logits, y_val, args.seed) if len(y_val) >= 4 else after["ece"]
    logger.info(
        "best epoch %d: val accuracy %.4f, f1 %.4f | ECE %.4f before, %.4f after temperature "
        "%.3f (%.4f cross-fitted)",
        best["epoch"], after["accuracy"], after["f1"], before["ece"], after["ece"], temperature,
        ece_cross,
    )
    elapsed = time.perf_counter() - started
    metrics = {
        "validation": {**after, "ece_uncalibrated": before["ece"], "ece_cross_fitted": ece_cross},
        "best_epoch": best["epoch"],
        "history": history.__dict__,
        "train_examples": len(train_set),
        "val_examples": len(val_set),
        "training_seconds": round(elapsed, 1),
    }
    ckpt = Checkpoint(
        model=model, pipeline=pipeline, labels=labels, temperature=temperature,
        metrics=metrics,
        extra={"command": "python -m model.train " + " ".join(sys.argv[1:]),
               "torch_threads": torch.get_num_threads()},
    )
    out = save_checkpoint(ckpt, args.out)
    plot_history(history, out.with_name(out.name + ".training.png"))
    logger.info("checkpoint written to %s in %.0fs", out, elapsed)
    return ckpt


def plot_history(history: History, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no training-curve plot")
        return
    epochs = range(1, len(history.train_loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, history.train_loss, "o-", label="train")
    ax_loss.plot(epochs, history.val_loss, "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, history.train_acc, "o-", label="train")
    ax_acc.plot(epochs, history.val_acc, "o-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("gensim").setLevel(logging.WARNING)  # it logs every second at INFO
    args = build_parser().parse_args(argv)
    try:
        ckpt = train(args)
    except (DataError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    print(json.dumps({k: v for k, v in ckpt.metrics["validation"].items()
                      if k != "confusion_matrix"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
