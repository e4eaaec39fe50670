"""Both directions of a bidirectional layer on two threads give the plain forward's answers."""

from __future__ import annotations

import itertools

import pytest
import torch

from model import rnn as rnn_module
from model.rnn import CELLS, POOLINGS, ModelConfig, SentimentRNN, pad_batch

BATCHES = {
    "one review": [[5, 6, 7, 8, 9, 10, 11]],
    "ragged, longest first": [[3, 4, 5, 6, 7, 8, 9], [9, 10, 11], [2]],
    "ragged, any order": [[9, 10], [3, 4, 5, 6, 7], [2, 8, 8]],
    "equal lengths": [[3, 4, 5], [6, 7, 8]],
}


def build(cell: str, pooling: str, layers: int) -> SentimentRNN:
    torch.manual_seed(3)
    config = ModelConfig(
        vocab_size=20,
        cell=cell,
        pooling=pooling,
        num_layers=layers,
        embed_dim=6,
        hidden_dim=5,
        bidirectional=True,
    )
    return SentimentRNN(config).eval()


def forward(model: SentimentRNN, batch: list[list[int]], parallel: bool) -> torch.Tensor:
    model.parallel_directions_max_batch = 8 if parallel else 0
    ids, lengths = pad_batch(batch)
    with torch.inference_mode():
        return model(ids, lengths)


@pytest.mark.parametrize(
    ("cell", "pooling", "layers"), list(itertools.product(CELLS, POOLINGS, [1, 2]))
)
def test_direction_parallel_forward_equals_the_plain_one(
    cell: str, pooling: str, layers: int
) -> None:
    model = build(cell, pooling, layers)
    for name, batch in BATCHES.items():
        plain = forward(model, batch, parallel=False)
        parallel = forward(model, batch, parallel=True)
        torch.testing.assert_close(parallel, plain, rtol=0, atol=1e-5, msg=name)


def test_the_parallel_path_runs_only_for_small_inference_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = build("gru", "maxmean", 1)
    calls: list[int] = []
    real = rnn_module.run_directions_in_parallel

    def counting(rnn: torch.nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor):  # type: ignore[no-untyped-def]
        calls.append(x.size(0))
        return real(rnn, x, lengths)

    monkeypatch.setattr(rnn_module, "run_directions_in_parallel", counting)
    model.parallel_directions_max_batch = 2
    ids, lengths = pad_batch([[3, 4], [5]])
    with torch.inference_mode():
        model(ids, lengths)  # 2 reviews: parallel
        big_ids, big_lengths = pad_batch([[3, 4], [5], [6]])
        model(big_ids, big_lengths)  # 3 reviews: plain
    model(ids, lengths)  # gradients on (training, attributions): plain
    model.train()
    with torch.no_grad():
        model(ids, lengths)  # training mode: plain
    assert calls == [2]


def test_weights_stay_shared_after_an_in_place_update() -> None:
    model = build("gru", "last", 1)
    batch = BATCHES["ragged, any order"]
    forward(model, batch, parallel=True)  # builds the one-direction layers
    with torch.no_grad():
        model.rnn.weight_hh_l0_reverse.mul_(0.5)  # e.g. load_state_dict copies in place
    torch.testing.assert_close(
        forward(model, batch, parallel=True), forward(model, batch, parallel=False), rtol=0, atol=1e-5
    )
