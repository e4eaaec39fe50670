import json
from pathlib import Path

import pytest

from model import learning_curve
from tests.conftest import write_synthetic_csv


def _csv(path: Path, n: int, seed: int) -> Path:
    return write_synthetic_csv(path, n, seed, header=("review", "sentiment"))


def test_learning_curve_fine_tunes_per_size_and_scores_the_heldout_set(
    tiny_checkpoint_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool, heldout = _csv(tmp_path / "pool.csv", 200, seed=41), _csv(tmp_path / "held.csv", 100, seed=42)
    out = tmp_path / "curve.json"
    assert learning_curve.main([
        "--base", str(tiny_checkpoint_dir), "--data", str(pool), "--eval", str(heldout),
        "--sizes", "0,150", "--out", str(out), "--finetune-lr", "0.005",
    ]) == 0
    rows = json.loads(out.read_text())
    assert [r["labels"] for r in rows] == [0, 150]
    assert all(r["n"] == 100 and {"accuracy", "f1", "ece", "nll", "seconds"} <= set(r) for r in rows)
    # the random-weight base is at chance; 150 labels teach it the synthetic cue words
    assert rows[1]["accuracy"] > rows[0]["accuracy"] + 0.15
    assert "| 150 |" in capsys.readouterr().out
