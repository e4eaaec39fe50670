"""SentimentRNN: embedding -> stacked (bi)RNN/LSTM/GRU -> summary over time -> linear.

The recurrence is h_t = g(U·h_{t-1} + W·x_t + b) with weights shared across time; the
classifier reads one summary vector per review (many-to-one) and returns logits; softmax is
applied by the caller (with the calibration temperature).

Unlike the classic toy that reads output[:, -1, :] of a right-padded batch (the state after
the padding), sequences are packed, so a review's answer never depends on what it is batched with.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

RecurrentLayer = type[nn.RNN] | type[nn.LSTM] | type[nn.GRU]
CELLS: dict[str, RecurrentLayer] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("last", "max", "mean", "maxmean")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int  # rows of the embedding table, <pad>=0 and <unk>=1 included
    num_classes: int = 2  # size of the softmax
    cell: str = "gru"  # recurrent cell: rnn | lstm | gru
    embed_dim: int = 128  # width of a token vector x_t
    hidden_dim: int = 128  # width of the hidden state h_t, per direction
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = True  # also read the review right-to-left
    pooling: str = "maxmean"  # summary over time: last | max | mean | maxmean (max and mean)
    dropout: float = 0.3  # before the classifier and between stacked layers
    embed_dropout: float = 0.2  # on the token vectors, during training only

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}: choose one of {', '.join(CELLS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        for name in ("vocab_size", "num_classes", "embed_dim", "hidden_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.num_classes < 2:
            raise ValueError("num_classes must be >= 2")

    @property
    def summary_dim(self) -> int:
        directions = 2 if self.bidirectional else 1
        return self.hidden_dim * directions * (2 if self.pooling == "maxmean" else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**data)


class SentimentRNN(nn.Module):
    # Inference on batches of at most this many reviews runs the two directions of each
    # bidirectional layer on two threads (same answers; see run_directions_in_parallel).
    # 0 = never, the default; it pays only with a spare core, so the service turns it on per
    # call when it measures cheaper (service/inference.py).
    parallel_directions_max_batch: int = 0

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
        if self._directions_in_parallel(x):
            out, h_n = run_directions_in_parallel(self.rnn, x, lengths)
        else:
            # Already longest-first (as Predictor sends them): skip pack/unpack's two reorder copies.
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

    def _directions_in_parallel(self, x: torch.Tensor) -> bool:
        return (
            self.config.bidirectional
            and 0 < x.size(0) <= self.parallel_directions_max_batch
            and not self.training
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
        )

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


# -- both directions of a bidirectional layer at once ----------------------------------------
# A lone review's time is the recurrent pass: ~len steps forward, then ~len steps backward, one
# after the other on one core. The directions are independent, so each runs as a one-direction
# layer sharing the bidirectional layer's weights, on two threads (torch drops the GIL inside
# the op). Same kernels, same weights: the same answers.

_DirectionPair = tuple[nn.RNNBase, nn.RNNBase]
_pairs: weakref.WeakKeyDictionary[nn.RNNBase, tuple[tuple[int, ...], list[_DirectionPair]]] = (
    weakref.WeakKeyDictionary()
)
_helper: tuple[int, ThreadPoolExecutor] | None = None
_helper_lock = threading.Lock()


def run_directions_in_parallel(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """What `rnn(packed x)` computes, unpacked: outputs (B, max(lengths), 2H), zero beyond
    each length, and h_n (layers*2, B, H) (a (h_n, c_n) pair for an LSTM). Inference only."""
    steps = x.size(1)
    ragged = bool((lengths < steps).any())
    # Reversing each review within its own length is its own inverse, and keeps padding put.
    # Equal lengths (a single review, the case this path is for) need no index: a plain flip.
    index = None
    if ragged:
        t = torch.arange(steps)
        index = torch.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t)

    def reverse(seq: torch.Tensor) -> torch.Tensor:
        if index is None:
            return seq.flip(1)
        return seq.gather(1, index.unsqueeze(-1).expand(-1, -1, seq.size(2)))

    helper = _helper_pool()
    finals: list[list[torch.Tensor]] = []
    layer_input = x
    for forward, backward in _direction_pairs(rnn):
        pending = helper.submit(_without_grad, backward, reverse(layer_input), lengths, ragged)
        out_f, final_f = _one_direction(forward, layer_input, lengths, ragged)
        out_b, final_b = pending.result()
        layer_input = torch.cat([out_f, reverse(out_b)], dim=2)
        finals.append([torch.cat([f, b]) for f, b in zip(final_f, final_b, strict=True)])
    out = layer_input[:, : int(lengths.max())]
    stacked = [torch.cat([layer[i] for layer in finals]) for i in range(len(finals[0]))]
    return out, (stacked[0], stacked[1]) if len(stacked) == 2 else stacked[0]


def _without_grad(
    layer: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, ragged: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    with torch.no_grad():  # grad mode is per thread; the caller's is off (checked)
        return _one_direction(layer, x, lengths, ragged)


def _one_direction(
    layer: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, ragged: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One-direction layer over x (B, T, F) -> (outputs (B, T, H), [h_n (1, B, H), c_n?])."""
    if ragged:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out_packed, final = layer(packed)
        out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=x.size(1))
    else:
        out, final = layer(x)
    return out, list(final) if isinstance(final, tuple) else [final]


def _direction_pairs(rnn: nn.RNNBase) -> list[_DirectionPair]:
    """(forward, backward) one-direction layers per stacked layer, sharing rnn's parameters."""
    key = tuple(id(p) for p in rnn._flat_weights)
    cached = _pairs.get(rnn)
    if cached is not None and cached[0] == key:
        return cached[1]
    pairs: list[_DirectionPair] = []
    for layer in range(rnn.num_layers):
        size = rnn.input_size if layer == 0 else 2 * rnn.hidden_size
        directions: list[nn.RNNBase] = []
        for suffix in ("", "_reverse"):
            cell = cast(RecurrentLayer, type(rnn))
            one = cell(size, rnn.hidden_size, bias=rnn.bias, batch_first=True)
            for name in one._flat_weights_names:  # weight_ih_l0, ...: take layer's own
                setattr(one, name, getattr(rnn, f"{name[:-1]}{layer}{suffix}"))
            directions.append(one.eval())
        pairs.append((directions[0], directions[1]))
    _pairs[rnn] = (key, pairs)
    return pairs


def _helper_pool() -> ThreadPoolExecutor:
    """The thread that runs the backward directions (one per process: a forked child makes
    its own, the parent's thread does not exist there)."""
    global _helper
    with _helper_lock:
        if _helper is None or _helper[0] != os.getpid():
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(
                1, "rnn-backward", initializer=torch.set_num_threads, initargs=(threads,)
            )
            _helper = (os.getpid(), pool)
        return _helper[1]


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
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    ids = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return ids, lengths
