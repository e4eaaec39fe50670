import csv
import json
from pathlib import Path

import pytest
import torch

from model import evaluate, predict, train
from model.checkpoint import load_checkpoint
from model.metrics import expected_calibration_error, fit_temperature, macro_f1
from tests.conftest import synthetic_reviews


def _write_csv(path: Path, n: int, seed: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(synthetic_reviews(n, seed))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    data = _write_csv(root / "train.csv", 600, seed=1)
    out = root / "ckpt"
    code = train.main([
        "--data", str(data), "--out", str(out), "--epochs", "6", "--batch-size", "32",
        "--embed-dim", "16", "--hidden-dim", "16", "--min-freq", "1", "--lr", "0.01",
        "--val-fraction", "0.2", "--patience", "3", "--seed", "3",
    ])
    assert code == 0
    return out, _write_csv(root / "heldout.csv", 300, seed=2)


def test_tiny_synthetic_dataset_trains_above_95_percent(trained: tuple[Path, Path]) -> None:
    out, _ = trained
    ckpt = load_checkpoint(out)
    validation = ckpt.metrics["validation"]
    assert validation["accuracy"] >= 0.95
    assert {"f1", "ece", "ece_uncalibrated", "confusion_matrix", "n"} <= set(validation)
    assert ckpt.temperature > 0 and ckpt.labels == ["negative", "positive"]
    assert out.with_name(out.name + ".training.png").read_bytes().startswith(b"\x89PNG")


def test_evaluate_json(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out, heldout = trained
    assert evaluate.main(["--checkpoint", str(out), "--data", str(heldout), "--json",
                          "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 300 and result["accuracy"] >= 0.95
    assert {"accuracy", "f1", "ece", "n", "confusion_matrix"} <= set(result)


def test_predict_writes_jsonl(trained: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = trained
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a wonderful superb film\nawful terrible boring plot\n")
    target = tmp_path / "out.jsonl"
    assert predict.main([str(reviews), "--checkpoint", str(out), "--out", str(target),
                         "--no-progress"]) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in rows)


def test_training_is_reproducible(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "d.csv", 120, seed=5)
    args = ["--data", str(data), "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8",
            "--min-freq", "1"]
    assert train.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert train.main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                 strict=True):
        assert torch.equal(x, y), name


def test_dry_run_and_clear_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _write_csv(tmp_path / "d.csv", 80, seed=6)
    assert train.main(["--data", str(data), "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    assert (tmp_path / "dry" / "model.safetensors").exists()
    assert train.main(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "none.csv: no such file" in caplog.text
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope"), "--data", str(data)]) == 2
    assert "not a checkpoint directory" in caplog.text


def test_metrics() -> None:
    assert macro_f1([[5, 0], [0, 5]]) == 1.0
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(
        (abs(1 - 0.9) + abs(1 - 0.8) + abs(0 - 0.6) + abs(1 - 0.7)) / 4
    )
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]] * 10 + [[4.0, -4.0]] * 5)
    targets = torch.tensor([0, 1] * 10 + [1] * 5)
    assert fit_temperature(logits, targets) > 1.0  # overconfident logits get softened
