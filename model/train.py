"""Train a SentimentRNN: python -m model.train --data PATH [--data PATH ...] --out DIR [options].

`TrainConfig` is the one source of settings and defaults; the command line is built from it.
The architecture is the model's own `Architecture` (model/rnn.py): its fields are the flags
(`--cell`, `--hidden-dim`, `--num-layers`, ...), with its defaults and help.
Training runs in stages: load data -> build model -> fit -> calibrate -> save.

Several corpora train one model: each `--data` source is split into train/validation with a
fixed seed, and each epoch draws from the sources by their `--weight`, so 67k short phrases
don't drown 25k long reviews (or the reverse). Crops of long reviews and rule-labelled
examples (negation, contrast, emoji, ratings) can join them. Validation is reported per source
and per length band; the softmax temperature is fitted on a mix of all validation sets.
With `--init-from CHECKPOINT` the run fine-tunes a trained model on new labels instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import re
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from model.augment import augment
from model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from model.data import FORMATS, DataError, Example, load_examples, read_aclimdb_unlabelled
from model.metrics import (
    classification_report,
    cross_fitted_ece,
    fit_temperature,
    restrict_to_present,
    rows_by_key,
    rows_by_length,
    summary_row,
)
from model.options import add_options, option, take_options
from model.predictor import in_length_batches, model_logits
from model.rnn import Architecture, SentimentRNN, format_parameter_summary, pad_batch
from model.text import TextConfig, TextPipeline, Vocabulary, tokenize

logger = logging.getLogger("model.train")


@dataclass
class TrainConfig:
    # data
    data: list[str] = option([], "training source (repeat): aclImdb dir/.tar.gz, .csv, .tsv or .jsonl",
                             required=True)
    weight: list[float] = option([], "sampling weight of each --data source, same order (default 1 "
                                 "each): its share of every epoch")
    val_data: list[str] = option([], "validation-only source (repeat), e.g. SST-2 dev")
    calibration_sets: list[str] = option([], "validation sets (by name, repeat) the temperature is fitted "
                                         "on (default: all); leave out splits that share text with "
                                         "training, such as phrases of the same sentences")
    out: str = option("", "checkpoint directory to write", required=True)
    format: str = option("auto", "input format of every source", choices=FORMATS)
    split: str = option("train", "aclImdb split to train on")
    text_column: str | None = option(None, "CSV/TSV/JSONL text field (default: detected)")
    label_column: str | None = option(None, "CSV/TSV/JSONL label field (default: detected)")
    strict: bool = option(False, "fail on the first bad row")
    val_fraction: float = option(0.1, "held-out validation share of each --data source")
    whole: list[str] = option([], "sources (by name) trained on whole, never split: for sets whose "
                              "own split would share text with training (SST-2's phrases of the "
                              "same sentences, SST-5's sentences inside them); validate them with "
                              "--val-data")
    imdb_urls: str = option("", "folder of the aclImdb urls_pos.txt / urls_neg.txt: IMDB validation "
                            "is then split by movie (random reviews share movies: it flatters)")
    limit: int = option(0, "use only N examples per source (0 = all)")
    epoch_size: int = option(0, "examples per epoch (0 = all training examples of all sources)")
    crops: float = option(0.0, "sentence-window crops of long training reviews, as a share of the "
                          "epoch (label of their review)")
    augment: float = option(0.0, "rule-labelled negation/contrast/emoji/rating examples made from "
                            "short training phrases, as a share of the epoch")
    # text pipeline
    max_tokens: int = option(400, "truncate reviews to N tokens (head + tail)")
    head_fraction: float = option(0.25, "share of max-tokens kept from the start")
    min_freq: int = option(2, "min token count for the vocabulary")
    max_vocab: int = option(30_000, "vocabulary size cap")
    lowercase: bool = option(True, "fold letter case")
    spelling: bool = option(True, "read an unknown word as its most frequent one-edit neighbour")
    # architecture: the model's own fields, one flag each (the data sets the vocabulary and
    # class counts); fine-tuning keeps the checkpoint's
    model: Architecture = field(default_factory=Architecture)
    # optimisation
    epochs: int = option(8, "maximum epochs")
    batch_size: int = option(64, "examples per step")
    lr: float = option(2e-3, "AdamW learning rate (fine-tuning: --finetune-lr)")
    lr_decay: float = option(1.0, "multiply the learning rate by this after every epoch")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    clip: float = option(1.0, "gradient-norm clipping")
    patience: int = option(2, "epochs without validation improvement before stopping")
    seed: int = option(13, "random seed (data splits, sampling and init)")
    threads: int = option(0, "torch threads (0 = torch default)")
    time_budget: float = option(0.0, "stop after N minutes (0 = none)")
    # pre-trained word vectors
    pretrain: str = option("none", "initialise embeddings with skip-gram word2vec on all training "
                           "texts (plus aclImdb train/unsup)", choices=("none", "word2vec"))
    w2v_epochs: int = option(5, "word2vec epochs")
    w2v_cache: str = option("", "file to reuse/save word2vec vectors")
    # fine-tuning
    init_from: str | None = option(None, "fine-tune this checkpoint dir ('shipped' = the default "
                                   "model) instead of training from scratch")
    finetune_lr: float = option(3e-4, "learning rate when fine-tuning")
    finetune_batch_size: int = option(16, "examples per step when fine-tuning (a few hundred rows "
                                      "still make many steps)")
    new_words: int = option(2_000, "fine-tuning: most new frequent words added to the vocabulary")
    dry_run: bool = option(False, "one batch of everything, as a smoke test")

    def __post_init__(self) -> None:
        if self.weight and len(self.weight) != len(self.data):
            raise ValueError(f"{len(self.weight)} --weight values for {len(self.data)} --data sources")
        if any(w <= 0 for w in self.weight):
            raise ValueError("--weight values must be > 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("--val-fraction must be within [0, 1)")

    @property
    def weights(self) -> list[float]:
        return self.weight or [1.0] * len(self.data)


def build_parser() -> argparse.ArgumentParser:
    """The CLI, one flag per TrainConfig field and per field of the model's `Architecture`: its
    type, default, choices and help."""
    p = argparse.ArgumentParser(
        prog="python -m model.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(p, TrainConfig)
    add_options(p.add_argument_group("architecture (model/rnn.py's Architecture)"), Architecture)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items() if v is not None}
    return TrainConfig(model=Architecture(**take_options(values, Architecture)), **values)


# ---------------------------------------------------------------- stage 1: load data


@dataclass
class Source:
    name: str
    train: list[Example]
    val: list[Example]
    weight: float


@dataclass
class Corpus:
    sources: list[Source]  # what each epoch samples from (crops and rules included)
    val_sets: dict[str, list[Example]]  # validation sets by name: stopping, calibration, report
    report_sets: dict[str, list[Example]]  # reported only (crops carry their review's label: noisy)
    unlabelled: list[str]  # extra texts for word2vec (aclImdb train/unsup)
    labels: list[str]

    @property
    def train_examples(self) -> list[Example]:
        """Every source's training examples, in source order (the order of their ids)."""
        return [e for s in self.sources for e in s.train]


def split_examples(
    examples: list[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, validation) at random; examples that share a group (the reviews of one movie)
    all land on one side, so validation never meets a movie training has seen."""
    if any(e.group for e in examples):
        return _split_groups(examples, val_fraction, seed)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(examples) * val_fraction)) if val_fraction > 0 else 0
    return [examples[i] for i in order[n_val:]], [examples[i] for i in order[:n_val]]


def _split_groups(
    examples: list[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    groups = sorted({e.group for e in examples})
    random.Random(seed).shuffle(groups)
    sizes = Counter(e.group for e in examples)
    want, held, total = round(len(examples) * val_fraction), set(), 0
    for group in groups:
        if total >= want:
            break
        held.add(group)
        total += sizes[group]
    return [e for e in examples if e.group not in held], [e for e in examples if e.group in held]


def source_name(path: str) -> str:
    """A short name for reports: the file's stem, with its folder when the stem is a split name."""
    stem = Path(path).name.split(".")[0]
    parent = Path(path).parent.name
    return f"{parent}/{stem}" if stem in _SPLIT_NAMES and parent not in ("", ".") else stem


_SPLIT_NAMES = frozenset({"train", "dev", "test", "val", "valid", "validation"})


def load_corpus(cfg: TrainConfig) -> Corpus:
    sources: list[Source] = []
    val_sets: dict[str, list[Example]] = {}
    report_sets: dict[str, list[Example]] = {}
    unlabelled: list[str] = []
    for path, weight in zip(cfg.data, cfg.weights, strict=True):
        examples = _read(cfg, path)
        name = source_name(path)
        fraction = 0.0 if name in cfg.whole else cfg.val_fraction
        train_part, val_part = split_examples(examples, fraction, cfg.seed)
        sources.append(Source(name, train_part, val_part, weight))
        if val_part:
            val_sets[name] = val_part
        if cfg.pretrain == "word2vec" and _is_aclimdb(path) and not cfg.dry_run:
            unlabelled += read_aclimdb_unlabelled(Path(path))
    unknown = sorted(set(cfg.whole) - {s.name for s in sources})
    if unknown:
        raise DataError(f"--whole {unknown}: no such source; have {[s.name for s in sources]}")
    for path in cfg.val_data:
        val_sets[source_name(path)] = _read(cfg, path, split="test")
    labels = sorted({e.label for s in sources for e in s.train + s.val})
    if len(labels) < 2:
        raise DataError(f"{', '.join(cfg.data)}: need at least two labels, found {labels}")
    _add_derived_sources(cfg, sources, report_sets)
    for s in sources:
        logger.info("source %s: %d train, %d validation, weight %.2f", s.name, len(s.train),
                    len(s.val), s.weight)
    return Corpus(sources, val_sets, report_sets, unlabelled, labels)


def _read(cfg: TrainConfig, path: str, split: str | None = None) -> list[Example]:
    urls = cfg.imdb_urls if _is_aclimdb(path) else None
    examples, report = load_examples(path, cfg.format, split or cfg.split, cfg.text_column,
                                     cfg.label_column, cfg.strict, urls or None)
    logger.info(report.summary())
    if cfg.dry_run or cfg.limit:
        keep = cfg.batch_size * 2 if cfg.dry_run else cfg.limit
        return random.Random(cfg.seed).sample(examples, min(keep, len(examples)))
    return examples


def _is_aclimdb(path: str) -> bool:
    return Path(path).suffix in (".gz", ".tgz", ".tar") or Path(path).is_dir()


def _add_derived_sources(
    cfg: TrainConfig, sources: list[Source], report_sets: dict[str, list[Example]]
) -> None:
    """Crops of long reviews and rule-labelled examples, sized as shares of the epoch."""
    total = sum(len(s.train) for s in sources)
    weight_sum = sum(s.weight for s in sources)
    originals = list(sources)
    if cfg.crops > 0:
        long_train = [e for s in originals for e in s.train if len(e.text.split()) > CROPPED_WORDS]
        long_val = [e for s in originals for e in s.val if len(e.text.split()) > CROPPED_WORDS]
        if long_train:
            crops = crop_sentences(long_train, max(1, round(total * cfg.crops)), cfg.seed)
            sources.append(Source("crops", crops, [], weight_sum * cfg.crops))
        else:
            logger.warning("--crops: no training text is longer than %d words", CROPPED_WORDS)
        if long_val:
            report_sets["crops-of-validation"] = crop_sentences(long_val, len(long_val), cfg.seed + 1)
    if cfg.augment > 0:
        short = [e for s in originals for e in s.train if len(e.text.split()) <= 12]
        rules = augment(short, max(4, round(total * cfg.augment)), cfg.seed)
        if rules:
            sources.append(Source("rules", rules, [], weight_sum * cfg.augment))


CROPPED_WORDS = 100  # reviews longer than this are cropped into sentence windows
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|<br\s*/?>(?:\s*<br\s*/?>)*", re.IGNORECASE)


def crop_sentences(examples: list[Example], n: int, seed: int) -> list[Example]:
    """`n` windows of 1-3 consecutive sentences from the reviews, each with its review's label."""
    rng = random.Random(seed)
    crops = []
    for _ in range(n):
        review = rng.choice(examples)
        sentences = [s for s in _SENTENCE_END.split(review.text) if s and s.strip()]
        width = rng.randint(1, 3)
        start = rng.randrange(max(1, len(sentences) - width + 1))
        crops.append(Example(" ".join(sentences[start : start + width]), review.label))
    return crops


# ---------------------------------------------------------------- stage 2: build the model


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: torch.Tensor
    lengths: torch.Tensor  # tokens before truncation, for per-length reports
    domains: list[str]  # per example, for per-domain reports


def encode_examples(
    pipeline: TextPipeline, examples: list[Example], labels: list[str],
    tokens: list[list[str]] | None = None,
) -> Encoded:
    """Ids, label ids and token counts; `tokens` when the texts are tokenized already."""
    if tokens is None:
        tokens = [tokenize(e.text, pipeline.config.lowercase) for e in examples]
    return Encoded(
        [pipeline.encode_tokens(t) for t in tokens],
        torch.tensor([labels.index(e.label) for e in examples]),
        torch.tensor([len(t) for t in tokens]),
        [e.domain for e in examples],
    )


def text_config(cfg: TrainConfig) -> TextConfig:
    return TextConfig(
        lowercase=cfg.lowercase, max_tokens=cfg.max_tokens, head_fraction=cfg.head_fraction,
        min_freq=1 if cfg.dry_run else cfg.min_freq, max_vocab=cfg.max_vocab, spelling=cfg.spelling,
    )


Built = tuple[SentimentRNN, TextPipeline, list[list[str]]]  # model, pipeline, training tokens


def build_model(cfg: TrainConfig, corpus: Corpus) -> Built:
    """A fresh model whose vocabulary (and word2vec) sees every training text, tokenized once."""
    lowercase = cfg.lowercase
    train_tokens = [tokenize(e.text, lowercase) for e in corpus.train_examples]
    pipeline = TextPipeline.fit_tokens(train_tokens, text_config(cfg))
    model = SentimentRNN(cfg.model.sized(len(pipeline.vocab), len(corpus.labels)))
    logger.info("parameters:\n%s", format_parameter_summary(model))
    if cfg.pretrain == "word2vec" and not cfg.dry_run:
        sentences = train_tokens + [tokenize(t, lowercase) for t in corpus.unlabelled]
        table = pretrain_word2vec(sentences, pipeline, cfg.model.embed_dim, cfg.w2v_epochs, cfg.seed,
                                  cfg.w2v_cache)
        if table is not None:
            model.embedding.weight.data.copy_(table)
    return model, pipeline, train_tokens


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
        logger.info("word2vec: %d sentences, %d words, %.0fs", len(sentences), len(vectors),
                    time.perf_counter() - started)
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


def load_for_finetuning(cfg: TrainConfig, corpus: Corpus) -> Built:
    """The checkpoint's model and vocabulary, plus the new data's frequent unknown words."""
    ckpt = load_checkpoint(None if cfg.init_from == "shipped" else cfg.init_from)
    if not set(corpus.labels) <= set(ckpt.labels):
        raise DataError(f"labels {corpus.labels} are not among the checkpoint's {ckpt.labels}")
    corpus.labels = list(ckpt.labels)  # binary data fine-tunes a three-class model's polar classes
    pipeline, old = ckpt.pipeline, ckpt.model
    train_tokens = [tokenize(e.text, pipeline.config.lowercase) for e in corpus.train_examples]
    counts = Counter(tok for tokens in train_tokens for tok in tokens if tok not in pipeline.vocab.index)
    new = [t for t, n in counts.most_common(cfg.new_words) if n >= pipeline.config.min_freq]
    vocab = Vocabulary(pipeline.vocab.tokens + new)
    model = SentimentRNN(dataclasses.replace(old.config, vocab_size=len(vocab)))
    state = old.state_dict()
    table = torch.cat([state["embedding.weight"], new_word_vectors(old, pipeline.vocab, new)])
    model.load_state_dict({**state, "embedding.weight": table})
    logger.info("fine-tuning %s: %d new words (%s)", ckpt.model_id, len(new), ", ".join(new[:10]))
    return model, TextPipeline(pipeline.config, vocab), train_tokens


def new_word_vectors(model: SentimentRNN, vocab: Vocabulary, words: list[str]) -> torch.Tensor:
    """A new word starts as its nearest known spelling ("gr8" has none: <unk>'s vector)."""
    weight = model.embedding.weight.detach()
    rows = [weight[vocab.spelling_neighbour(w)] for w in words]
    return torch.stack(rows) if rows else weight[:0]


# ---------------------------------------------------------------- stage 3: fit


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights were kept


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


def epoch_sample(sizes: list[int], weights: list[float], epoch_size: int, rng: random.Random) -> list[int]:
    """Indices into the concatenated sources: each source's share of the epoch is its weight's.

    A source draws without replacement while it has examples enough, then starts over.
    """
    picked: list[int] = []
    offset = 0
    for size, weight in zip(sizes, weights, strict=True):
        want = round(epoch_size * weight / sum(weights))
        while want > 0 and size:
            take = rng.sample(range(size), min(size, want))
            picked += [offset + i for i in take]
            want -= len(take)
        offset += size
    return picked


def fit(cfg: TrainConfig, model: SentimentRNN, train: Encoded, sizes: list[int],
        weights: list[float], val: Encoded, started: float) -> History:
    """Train with early stopping on validation loss; the model ends with its best weights."""
    lr = cfg.finetune_lr if cfg.init_from else cfg.lr
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=cfg.lr_decay)
    history, rng = History(), random.Random(cfg.seed)
    best: dict[str, Any] = {"loss": float("inf"), "epoch": 0, "state": _snapshot(model)}
    epochs = 1 if cfg.dry_run else cfg.epochs
    for epoch in range(1, epochs + 1):
        chosen = epoch_sample(sizes, weights, cfg.epoch_size or sum(sizes), rng)
        loss, acc = train_epoch(cfg, model, optimiser, train, chosen, rng, f"epoch {epoch}/{epochs}")
        schedule.step()
        val_report = classification_report(score(model, val.ids), val.labels)
        for name, value in zip(("train_loss", "train_acc", "val_loss", "val_acc"),
                               (loss, acc, val_report["nll"], val_report["accuracy"]), strict=True):
            getattr(history, name).append(value)
        logger.info("epoch %d: train loss %.4f acc %.4f | val loss %.4f acc %.4f", epoch, loss, acc,
                    val_report["nll"], val_report["accuracy"])
        if val_report["nll"] < best["loss"]:
            best = {"loss": val_report["nll"], "epoch": epoch, "state": _snapshot(model)}
        elif epoch - best["epoch"] >= cfg.patience:
            logger.info("early stop: no validation improvement for %d epochs", epoch - best["epoch"])
            break
        if cfg.time_budget and time.perf_counter() - started > cfg.time_budget * 60:
            logger.info("time budget of %.0f minutes reached", cfg.time_budget)
            break
    model.load_state_dict(best["state"])
    history.best_epoch = best["epoch"]
    return history


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_epoch(cfg: TrainConfig, model: SentimentRNN, optimiser: torch.optim.Optimizer,
                data: Encoded, chosen: list[int], rng: random.Random, desc: str) -> tuple[float, float]:
    """One pass over the chosen examples in length-bucketed batches: (mean loss, accuracy)."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    batch_size = cfg.finetune_batch_size if cfg.init_from else cfg.batch_size
    batches = length_buckets([len(data.ids[i]) for i in chosen], batch_size, rng)
    if cfg.dry_run:
        batches = batches[:1]
    seen = correct = 0
    loss_sum = 0.0
    bar = tqdm(batches, desc=desc, unit="batch", file=sys.stderr, mininterval=5)
    for batch in bar:
        rows = [chosen[i] for i in batch]
        ids, lens = pad_batch([data.ids[i] for i in rows])
        target = data.labels[rows]
        logits = model(ids, lens)
        loss = loss_fn(logits, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimiser.step()
        seen += len(rows)
        correct += int((logits.argmax(1) == target).sum())
        loss_sum += float(loss.detach()) * len(rows)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    bar.close()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def score(model: SentimentRNN, ids: list[list[int]], batch_size: int = 256) -> torch.Tensor:
    """Logits (N, C) in input order (eval mode), through the batched scorer prediction uses."""
    return in_length_batches(ids, lambda batch: model_logits(model, batch), batch_size,
                             model.config.num_classes)


# ---------------------------------------------------------------- stage 4: calibrate


def validation_mix(val: dict[str, Encoded], cap: int, seed: int) -> Encoded:
    """Up to `cap` examples of every validation set, so no set dominates calibration."""
    rng = random.Random(seed)
    ids: list[list[int]] = []
    domains: list[str] = []
    labels, lengths = [], []
    for enc in val.values():
        keep = sorted(rng.sample(range(len(enc.ids)), min(cap, len(enc.ids))))
        ids += [enc.ids[i] for i in keep]
        domains += [enc.domains[i] for i in keep]
        labels.append(enc.labels[keep])
        lengths.append(enc.lengths[keep])
    return Encoded(ids, torch.cat(labels), torch.cat(lengths), domains)


def calibration_mix(cfg: TrainConfig, val: dict[str, Encoded], mix: Encoded) -> Encoded:
    """The validation mix, or the mix of only the sets named by --calibration-sets."""
    if not cfg.calibration_sets:
        return mix
    unknown = sorted(set(cfg.calibration_sets) - set(val))
    if unknown:
        raise DataError(f"--calibration-sets {unknown}: no such validation set; have {sorted(val)}")
    return validation_mix({n: val[n] for n in cfg.calibration_sets}, cap=2_500, seed=cfg.seed)


def calibrate(model: SentimentRNN, mix: Encoded, val: dict[str, Encoded], seed: int,
              labels: list[str]) -> tuple[float, dict]:
    """Temperature fitted on the mix; metrics per validation set, length band and domain after
    it. A set labelled in fewer classes than the model has is scored on those classes only
    (`restrict_to_present`): a binary set's accuracy is binary accuracy."""
    logits = score(model, mix.ids)
    before = classification_report(logits, mix.labels)
    temperature = fit_temperature(logits, mix.labels) if len(mix.labels) > 1 else 1.0
    after = classification_report(logits, mix.labels, temperature)
    metrics: dict[str, Any] = {
        "validation": {**after, "ece_uncalibrated": before["ece"],
                       "ece_cross_fitted": cross_fitted_ece(logits, mix.labels, seed)},
        "by_length": rows_by_length(logits, mix.labels, mix.lengths, temperature),
        "by_source": {},
    }
    for name, enc in val.items():
        set_logits, set_labels, classes = restrict_to_present(score(model, enc.ids), enc.labels)
        row = {
            **summary_row(set_logits, set_labels, temperature),
            "classes": [labels[c] for c in classes],
            "ece_cross_fitted": cross_fitted_ece(set_logits, set_labels, seed),
            "by_length": rows_by_length(set_logits, set_labels, enc.lengths, temperature),
        }
        if any(enc.domains):
            row["by_domain"] = rows_by_key(set_logits, set_labels, enc.domains, temperature)
        metrics["by_source"][name] = row
    return temperature, metrics


def log_metrics(metrics: dict[str, Any], temperature: float) -> None:
    v = metrics["validation"]
    logger.info("validation mix: accuracy %.4f, f1 %.4f | ECE %.4f before, %.4f after T=%.3f "
                "(%.4f cross-fitted)", v["accuracy"], v["f1"], v["ece_uncalibrated"], v["ece"],
                temperature, v["ece_cross_fitted"])
    for name, row in metrics["by_source"].items():
        bands = "; ".join(f"{band} n={r['n']} acc {r['accuracy']:.3f} ece {r['ece']:.3f}"
                          for band, r in row["by_length"].items())
        logger.info("  %-22s n=%-6d acc %.4f f1 %.4f recall %.4f ece %.4f | %s", name, row["n"],
                    row["accuracy"], row["f1"], row["recall"], row["ece"], bands)
        for domain, r in row.get("by_domain", {}).items():
            logger.info("    domain %-15s n=%-6d acc %.4f ece %.4f", domain, r["n"], r["accuracy"], r["ece"])


# ---------------------------------------------------------------- the whole run


def train(cfg: TrainConfig) -> Checkpoint:
    started = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    corpus = load_corpus(cfg)
    model, pipeline, train_tokens = (load_for_finetuning if cfg.init_from else build_model)(cfg, corpus)
    train_examples = corpus.train_examples
    train_data = encode_examples(pipeline, train_examples, corpus.labels, train_tokens)
    del train_tokens
    val = {name: encode_examples(pipeline, ex, corpus.labels) for name, ex in corpus.val_sets.items()}
    if not val:
        raise DataError("no validation examples: raise --val-fraction or pass --val-data")
    mix = validation_mix(val, cap=2_500, seed=cfg.seed)
    val.update({name: encode_examples(pipeline, ex, corpus.labels)
                for name, ex in corpus.report_sets.items()})
    history = fit(cfg, model, train_data, [len(s.train) for s in corpus.sources],
                  [s.weight for s in corpus.sources], mix, started)
    temperature, metrics = calibrate(model, calibration_mix(cfg, val, mix), val, cfg.seed,
                                     corpus.labels)
    log_metrics(metrics, temperature)
    metrics.update(
        best_epoch=history.best_epoch,
        history=dataclasses.asdict(history),
        train_examples=len(train_examples), val_examples=len(mix.ids),
        sources={s.name: {"train": len(s.train), "validation": len(s.val), "weight": s.weight}
                 for s in corpus.sources},
        training_seconds=round(time.perf_counter() - started, 1),
    )
    ckpt = Checkpoint(
        model=model.eval(), pipeline=pipeline, labels=corpus.labels, temperature=temperature,
        metrics=metrics, extra={"command": "python -m model.train " + " ".join(sys.argv[1:]),
                                "torch_threads": torch.get_num_threads(),
                                "fine_tuned_from": cfg.init_from},
    )
    out = save_checkpoint(ckpt, cfg.out)
    plot_history(history, out.with_name(out.name + ".training.png"))
    logger.info("checkpoint written to %s in %.0fs", out, time.perf_counter() - started)
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
        ckpt = train(config_from_args(args))
    except (DataError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    print(json.dumps({k: v for k, v in ckpt.metrics["validation"].items()
                      if k != "confusion_matrix"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
