"""SentimentRNN: embedding -> stacked (bi)RNN/LSTM/GRU -> summary over time -> linear.

The recurrence is h_t = g(U·h_{t-1} + W·x_t + b) with weights shared across time; the
classifier reads one summary vector per review (many-to-one) and returns logits; softmax is
applied by the caller (with the calibration temperature).

Unlike the classic toy that reads output[:, -1, :] of a right-padded batch (the state after
the padding), sequences are packed, so a review's answer never depends on what it is batched with.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from model.options import option

RecurrentLayer = type[nn.RNN] | type[nn.LSTM] | type[nn.GRU]
CELLS: dict[str, RecurrentLayer] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("last", "max", "mean", "maxmean")


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The network's shape: what a trainer chooses (model/train.py's command line is built from
    these fields, their defaults and help). The defaults are the shipped model's."""

    cell: str = option("gru", "recurrent cell", choices=tuple(CELLS))
    embed_dim: int = option(128, "width of a token vector x_t")
    hidden_dim: int = option(64, "width of the hidden state h_t, per direction")
    num_layers: int = option(1, "stacked recurrent layers")
    bidirectional: bool = option(True, "also read the review right-to-left")
    pooling: str = option("maxmean", "summary over time (maxmean: max and mean side by side)",
                          choices=POOLINGS)
    dropout: float = option(0.3, "dropout before the classifier and between stacked layers")
    embed_dropout: float = option(0.2, "dropout on the token vectors, during training only")

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}: choose one of {', '.join(CELLS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        for name in ("embed_dim", "hidden_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def summary_dim(self) -> int:
        directions = 2 if self.bidirectional else 1
        return self.hidden_dim * directions * (2 if self.pooling == "maxmean" else 1)

    def sized(self, vocab_size: int, num_classes: int) -> ModelConfig:
        """This architecture with the sizes the data fixes."""
        chosen = {f.name: getattr(self, f.name) for f in fields(Architecture)}
        return ModelConfig(vocab_size=vocab_size, num_classes=num_classes, **chosen)


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Architecture):
    """An architecture with the sizes its data fixed: what a checkpoint records."""

    vocab_size: int  # rows of the embedding table, <pad>=0 and <unk>=1 included
    num_classes: int = 2  # size of the softmax

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size < 1:
            raise ValueError("vocab_size must be >= 1")
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        # The sizes first, as checkpoints and GET /model have always listed them.
        data = asdict(self)
        return {"vocab_size": data.pop("vocab_size"), "num_classes": data.pop("num_classes"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**data)


class SentimentRNN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        self.rnn = CELLS[config.cell](
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.summary_dim, config.num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) right-padded with 0, lengths (B,) >= 1 -> logits (B, C)."""
        return self.forward_embedded(self.embed_dropout(self.embedding(ids)), lengths)

    def forward_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Token vectors x (B, T, E) -> logits (B, C); the entry point for gradient attributions."""
        lengths = lengths.cpu()
        out: torch.Tensor | PackedSequence
        # Already longest-first (as model_logits sends them): skip pack/unpack's two reorder copies.
        presorted = bool((lengths[:-1] >= lengths[1:]).all())
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=presorted)
        out, h_n = self.rnn(packed)
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        if self.config.pooling == "last":
            summary = self._final_states(h_n)  # (B, D*H)
        else:
            if isinstance(out, PackedSequence):
                out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T', D*H)
            summary = self._pool(out, lengths.to(out.device))
        return self.classifier(self.dropout(summary))  # (B, C)

    def _final_states(self, h_n: torch.Tensor) -> torch.Tensor:
        # h_n: (layers * D, B, H); the top layer's forward state saw the whole review left to
        # right, its backward state right to left.
        if self.config.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=1)  # (B, 2H)
        return h_n[-1]  # (B, H)

    def _pool(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(out.size(1), device=out.device)
        mask = (steps[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T', 1)
        pooled = []
        if self.config.pooling in ("max", "maxmean"):
            pooled.append(out.masked_fill(~mask, float("-inf")).amax(dim=1))  # (B, D*H)
        if self.config.pooling in ("mean", "maxmean"):
            # pad_packed_sequence pads with 0.0, so padded steps add nothing to the sum.
            pooled.append(out.sum(dim=1) / lengths[:, None].to(out.dtype))
        return torch.cat(pooled, dim=1)


def parameter_summary(model: nn.Module) -> list[tuple[str, int]]:
    """Parameters per top-level layer, in definition order: [(name, count), ...]."""
    rows = []
    for name, child in model.named_children():
        count = sum(p.numel() for p in child.parameters())
        if count:
            rows.append((name, count))
    return rows


def format_parameter_summary(model: nn.Module) -> str:
    rows = parameter_summary(model)
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {count:>12,}" for name, count in rows]
    lines.append(f"{'total':<{width}}  {sum(c for _, c in rows):>12,}")
    return "\n".join(lines)


def pad_batch(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with 0 -> ids (B, T_max), lengths (B,)."""
    if len(sequences) == 1:  # a lone review (the common request): nothing to pad
        (only,) = sequences
        ids_1 = np.fromiter(only, np.int64, len(only)).reshape(1, -1)
        return torch.from_numpy(ids_1), torch.tensor([len(only)])
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    ids = np.zeros((len(sequences), int(lengths.max())), dtype=np.int64)
    # Row-major boolean indexing fills row by row: the ids in the order chain() yields them.
    inside = np.arange(ids.shape[1]) < lengths[:, None]
    ids[inside] = np.fromiter(itertools.chain.from_iterable(sequences), np.int64, int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(lengths)
