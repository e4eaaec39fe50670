"""The ONNX Runtime scorer gives PyTorch's answers: every cell, depth, direction and pooling
the model offers; padding never changes an answer; a change of weights or process rebuilds the
session; a configuration the graph does not build, or a graph that answers otherwise, is
refused when a Predictor loads."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from model import onnx_graph
from model.onnx_graph import GraphError, OnnxScorer, build_graph
from model.predictor import Predictor, model_logits
from model.rnn import CELLS, POOLINGS, ModelConfig, SentimentRNN, pad_batch
from tests.conftest import build_checkpoint, synthetic_reviews

# Every choice the model offers (model/rnn.py), one and two layers, one and two directions.
CONFIGS = list(itertools.product(CELLS, (False, True), (1, 2), POOLINGS))


def tiny(
    cell: str = "gru", bidirectional: bool = True, layers: int = 1, pooling: str = "maxmean"
) -> SentimentRNN:
    torch.manual_seed(1)
    config = ModelConfig(
        vocab_size=50,
        num_classes=3,
        cell=cell,
        embed_dim=8,
        hidden_dim=6,
        num_layers=layers,
        bidirectional=bidirectional,
        pooling=pooling,
    )
    return SentimentRNN(config).eval()


def sequences(n: int, seed: int, longest: int = 12) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(2, 50) for _ in range(rng.randrange(1, longest))] for _ in range(n)]


def onnx_logits(model: SentimentRNN, seqs: list[list[int]]) -> torch.Tensor:
    ids, lengths = pad_batch(seqs)
    return OnnxScorer(model).logits(ids, lengths)


@pytest.mark.parametrize(("cell", "bidirectional", "layers", "pooling"), CONFIGS)
def test_equals_pytorch(cell: str, bidirectional: bool, layers: int, pooling: str) -> None:
    model = tiny(cell, bidirectional, layers, pooling)
    seqs = sequences(7, seed=layers)
    torch.testing.assert_close(onnx_logits(model, seqs), model_logits(model, seqs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["last", "maxmean"])
def test_padding_never_changes_an_answer(pooling: str) -> None:
    model = tiny(pooling=pooling)
    short, long = [5, 6, 7], [9] * 30
    alone = onnx_logits(model, [short])
    beside_longer = onnx_logits(model, [long, short, [3]])[1]
    torch.testing.assert_close(beside_longer, alone[0], atol=1e-6, rtol=0)


def test_weights_changed_in_place_rebuild_the_session() -> None:
    model = tiny()
    scorer = OnnxScorer(model)
    ids, lengths = pad_batch([[4, 5, 6]])
    before = scorer.logits(ids, lengths)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # what an optimiser step does: in place
    after = scorer.logits(ids, lengths)
    torch.testing.assert_close(after, before + 1.0, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, model_logits(model, [[4, 5, 6]]), atol=1e-5, rtol=0)


def test_a_new_process_gets_its_own_session(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = OnnxScorer(tiny())
    ids, lengths = pad_batch([[4, 5]])
    scorer.logits(ids, lengths)
    built = []
    real = onnx_graph.new_session
    monkeypatch.setattr(onnx_graph, "new_session", lambda *a: built.append(a) or real(*a))
    scorer.logits(ids, lengths)
    assert built == []  # same process, same weights: the session is reused
    monkeypatch.setattr(onnx_graph.os, "getpid", lambda: -1)  # as in a forked worker
    scorer.logits(ids, lengths)
    assert len(built) == 1


def test_threads_with_different_settings_keep_their_own_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = OnnxScorer(tiny())
    ids, lengths = pad_batch([[4, 5]])
    built = []
    real = onnx_graph.new_session
    monkeypatch.setattr(onnx_graph, "new_session", lambda *a: built.append(a[1]) or real(*a))
    for threads in (1, 2, 1, 2):  # e.g. an event loop and an inference thread, alternating
        monkeypatch.setattr(onnx_graph.torch, "get_num_threads", lambda t=threads: t)
        scorer.logits(ids, lengths)
    assert built == [1, 2]  # one session each, built once


def test_predictor_backends_agree(tmp_path: Path) -> None:
    checkpoint = build_checkpoint(tmp_path / "ckpt")
    texts = [text for text, _ in synthetic_reviews(40, seed=3)]
    on_onnx = Predictor(checkpoint, batch_size=8).predict_texts(texts)
    on_torch = Predictor(checkpoint, batch_size=8, backend="torch").predict_texts(texts)
    torch.testing.assert_close(on_onnx, on_torch, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("option", "value"), [("cell", "transformer"), ("pooling", "attention")])
def test_a_configuration_the_graph_does_not_build_is_refused_by_name(option: str, value: str) -> None:
    model = tiny()
    object.__setattr__(model.config, option, value)  # as if model/rnn.py had gained the choice
    with pytest.raises(GraphError, match=f"builds no graph for {option}='{value}'.*torch backend"):
        build_graph(model)


def drift_the_graph(monkeypatch: pytest.MonkeyPatch, by: float = 0.01) -> None:
    """Every graph built from now on reads one class's bias `by` off the model's."""
    from onnx import numpy_helper

    def drifted(model: SentimentRNN) -> Any:
        graph = build_graph(model)
        bias = next(t for t in graph.graph.initializer if t.name == "classifier_b")
        value = numpy_helper.to_array(bias).copy()
        value[0] += by
        bias.CopyFrom(numpy_helper.from_array(value, bias.name))
        return graph

    monkeypatch.setattr(onnx_graph, "build_graph", drifted)


def test_a_graph_that_answers_otherwise_than_pytorch_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = build_checkpoint(tmp_path / "ckpt")
    drift_the_graph(monkeypatch, by=1e-6)  # within float noise: loads
    Predictor(checkpoint)
    drift_the_graph(monkeypatch, by=0.01)
    with pytest.raises(GraphError, match=r"ONNX graph's probabilities differ from PyTorch's by up to"):
        Predictor(checkpoint)
    Predictor(checkpoint, backend="torch")  # PyTorch alone needs no graph


def test_a_graph_is_checked_once_until_its_weights_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server checks in the parent before forking; each worker's Predictor then finds it done.
    from model import predictor as predictor_module

    checks: list[int] = []

    def counted(model: SentimentRNN, sequences: Any) -> torch.Tensor:
        checks.append(len(sequences))
        return model_logits(model, sequences)

    monkeypatch.setattr(predictor_module, "model_logits", counted)
    monkeypatch.setattr(predictor_module, "_AGREED", set())  # forget other tests' checks
    checkpoint = build_checkpoint(tmp_path / "ckpt")
    Predictor(checkpoint)
    Predictor(checkpoint)
    assert len(checks) == 1
    with torch.no_grad():
        checkpoint.model.embedding.weight[3] += 0.5  # an input of the graph, not in it
    Predictor(checkpoint)
    assert len(checks) == 2


def test_the_check_at_load_leaves_no_session_behind(tmp_path: Path) -> None:
    # Processes fork after loading (the benchmark's scorers): a child hangs tearing down an
    # inherited session's thread pool, so the check scores on a one-thread session of its own.
    predictor = Predictor(build_checkpoint(tmp_path / "ckpt"))
    assert predictor._onnx is not None and predictor._onnx._sessions == {}


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    checkpoint = build_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="unknown backend 'tf': choose one of onnx, torch"):
        Predictor(checkpoint, backend="tf")  # type: ignore[arg-type]
