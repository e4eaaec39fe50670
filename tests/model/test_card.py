"""model.card renders a checkpoint's own validation record as the model card's tables."""

from pathlib import Path

import pytest

from model import card
from model.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import build_checkpoint


def test_tables_come_from_the_checkpoint_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = build_checkpoint(tmp_path / "base", labels=("negative", "neutral", "positive"))
    row = {"n": 1200, "accuracy": 0.9123, "f1": 0.9, "recall": 0.88, "ece": 0.0234,
           "ece_cross_fitted": 0.031, "nll": 0.3, "classes": ["negative", "positive"],
           "by_length": {">100": {"n": 1200, "accuracy": 0.9123, "f1": 0.9, "ece": 0.0234}},
           "by_domain": {"books": {"n": 700, "accuracy": 0.95, "f1": 0.94, "ece": 0.01}}}
    ckpt.metrics = {"by_source": {"reviews": row}}
    save_checkpoint(ckpt, tmp_path / "ckpt")
    assert card.main(["--checkpoint", str(tmp_path / "ckpt")]) == 0
    out = capsys.readouterr().out
    assert f"`{load_checkpoint(tmp_path / 'ckpt').model_id}`" in out
    assert "| reviews | 1,200 | neg/pos | 91.2 | 0.900 | 0.880 | 2.3 | 3.1 |" in out
    assert "| reviews | — | — | n=1,200: 91.2%, ECE 2.3% |" in out
    assert "| reviews | books | 700 | 95.0 | 0.940 | 1.0 |" in out


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert card.main(["--checkpoint", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
