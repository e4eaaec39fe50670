"""The launcher checks the ONNX graph once, before any worker forks: a graph that answers
otherwise than PyTorch stops the server there, and workers find a sound one already checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import predictor as predictor_module
from service.config import Settings
from service.server.launch import load
from tests.conftest import build_checkpoint
from tests.model.test_onnx_graph import drift_the_graph


def test_the_parent_checks_the_graph_and_workers_find_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictor_module, "_AGREED", set())
    build_checkpoint(tmp_path / "ckpt")
    checkpoint = load(Settings(model_dir=tmp_path / "ckpt"))
    assert checkpoint is not None
    assert len(predictor_module._AGREED) == 1  # what each worker's Predictor looks up


def test_a_graph_that_answers_otherwise_stops_the_server_before_it_forks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(predictor_module, "_AGREED", set())
    build_checkpoint(tmp_path / "ckpt")
    drift_the_graph(monkeypatch)
    assert load(Settings(model_dir=tmp_path / "ckpt")) is None
    assert "ONNX graph's probabilities differ from PyTorch's" in caplog.text
    assert not predictor_module._AGREED
