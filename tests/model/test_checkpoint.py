import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import (
    CONFIG,
    MANIFEST,
    VOCAB,
    WEIGHTS,
    CheckpointError,
    _sha256,
    load_checkpoint,
    save_checkpoint,
)
from model.predictor import Predictor
from tests.conftest import build_checkpoint

REVIEWS = ["a wonderful film", "awful and boring plot", "the movie was a movie"]


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _refresh_manifest(directory: Path) -> None:
    """Rewrite the manifest so a deliberate edit passes the sha256 check and hits a later one."""
    manifest = json.loads((directory / MANIFEST).read_text())
    for name in manifest["files"]:
        manifest["files"][name] = _sha256(directory / name)
    (directory / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_round_trip_gives_identical_probabilities(tmp_path: Path, cell: str) -> None:
    original = build_checkpoint(tmp_path / "ckpt", cell=cell, bidirectional=True)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.labels == original.labels and loaded.temperature == original.temperature
    assert loaded.pipeline.vocab.tokens == original.pipeline.vocab.tokens
    assert loaded.pipeline.config == original.pipeline.config
    assert loaded.model.config == original.model.config
    before = Predictor(original).predict_texts(REVIEWS)
    after = Predictor(loaded).predict_texts(REVIEWS)
    assert torch.equal(before, after)
    assert len(loaded.sha256) == 64 and loaded.model_id.startswith("ckpt@")


def test_checkpoint_holds_no_pickle(tiny_checkpoint_dir: Path) -> None:
    names = sorted(p.name for p in tiny_checkpoint_dir.iterdir())
    assert names == sorted([CONFIG, MANIFEST, VOCAB, WEIGHTS])
    raw = (tiny_checkpoint_dir / WEIGHTS).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 length, JSON header, data
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"] == {"format_version": "1"}
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / WEIGHTS).unlink(), "model.safetensors: missing file"),
        (lambda d: (d / MANIFEST).unlink(), "manifest.json: missing file"),
        (lambda d: (d / VOCAB).unlink(), "vocab.json: missing file"),
        (
            lambda d: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:-100]),
            "model.safetensors: sha256 differs from the manifest",
        ),
        (
            lambda d: (d / CONFIG).write_text((d / CONFIG).read_text().replace("1.3", "1.4")),
            "config.json: sha256 differs from the manifest",
        ),
    ],
    ids=["missing-weights", "missing-manifest", "missing-vocab", "truncated", "tampered"],
)
def test_damaged_checkpoint_gives_one_clear_error(
    tiny_checkpoint_dir: Path, tmp_path: Path, damage, message: str
) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    damage(directory)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(directory)


def test_truncated_weights_with_matching_manifest(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    (directory / WEIGHTS).write_bytes((directory / WEIGHTS).read_bytes()[:-100])
    _refresh_manifest(directory)
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable weights"):
        load_checkpoint(directory)


def test_shape_mismatch(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    other = build_checkpoint(tmp_path / "wider", hidden_dim=20)
    state = {k: v.contiguous() for k, v in other.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    _refresh_manifest(directory)
    with pytest.raises(CheckpointError, match="shape mismatch for classifier.weight: file has"):
        load_checkpoint(directory)


def test_unknown_version(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    config = json.loads((directory / CONFIG).read_text())
    config["format_version"] = 99
    (directory / CONFIG).write_text(json.dumps(config))
    _refresh_manifest(directory)
    with pytest.raises(CheckpointError, match="unknown format version 99"):
        load_checkpoint(directory)


def test_vocabulary_mismatch_and_bad_json(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    (directory / VOCAB).write_text(json.dumps(["<pad>", "<unk>", "only"]))
    _refresh_manifest(directory)
    with pytest.raises(CheckpointError, match="vocab.json: 3 tokens"):
        load_checkpoint(directory)
    (directory / CONFIG).write_text("{not json")
    _refresh_manifest(directory)
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_checkpoint(directory)


def test_missing_directory() -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_checkpoint("/nonexistent/checkpoint")


def test_interrupted_write_leaves_the_old_checkpoint(
    tiny_checkpoint_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    ckpt = load_checkpoint(directory)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("model.checkpoint.save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ckpt, directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temp dir left behind


# -- each load-time check, on a checkpoint whose manifest vouches for the planted fault ----------


def _edit_weights(directory: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    state = load_file(str(directory / WEIGHTS))
    edit(state)
    save_file(state, str(directory / WEIGHTS), metadata={"format_version": "1"})
    _refresh_manifest(directory)


def _edit_config(directory: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((directory / CONFIG).read_text())
    edit(config)
    (directory / CONFIG).write_text(json.dumps(config))
    _refresh_manifest(directory)


def _set_value(name: str, value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state[name][0] = value  # one value of many: the check must look at all of them

    return edit


def _rename(old: str, new: str) -> Callable[[dict[str, torch.Tensor]], None]:
    def edit(state: dict[str, torch.Tensor]) -> None:
        state[new] = state.pop(old)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set_value("classifier.bias", float("nan")), "classifier.bias holds NaN or infinite values"),
        (_set_value("rnn.weight_hh_l0", float("inf")), "rnn.weight_hh_l0 holds NaN or infinite values"),
        (_set_value("embedding.weight", float("-inf")), "embedding.weight holds NaN or infinite"),
        (
            _rename("classifier.weight", "head.weight"),
            r"weights don't match the architecture \(missing \['classifier.weight'\], "
            r"unexpected \['head.weight'\]\)",
        ),
        (
            _rename("rnn.bias_hh_l0", "rnn.bias_hh_l1"),
            r"weights don't match the architecture \(missing \['rnn.bias_hh_l0'\], "
            r"unexpected \['rnn.bias_hh_l1'\]\)",
        ),
    ],
    ids=["nan", "inf", "minus-inf", "renamed-tensor", "tensor-of-another-layer"],
)
def test_weights_that_are_not_numbers_or_not_the_architectures_are_refused(
    tiny_checkpoint_dir: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, torch.Tensor]], None],
    message: str,
) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    _edit_weights(directory, edit)
    with pytest.raises(CheckpointError, match=f"model.safetensors: {message}"):
        load_checkpoint(directory)


def _labels(labels: list[str]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["labels"] = labels

    return edit


def _temperature(value: float) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["temperature"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_labels(["negative", "neutral", "positive"]), "3 labels for 2 classes"),
        (_labels(["positive"]), "1 labels for 2 classes"),
        (_temperature(0.0), "temperature must be > 0"),
        (_temperature(-1.3), "temperature must be > 0"),
        (_temperature(float("nan")), "temperature must be > 0"),
    ],
    ids=["three-labels", "one-label", "zero-temperature", "negative-temperature", "nan-temperature"],
)
def test_labels_that_miss_the_classes_and_a_temperature_not_above_zero_are_refused(
    tiny_checkpoint_dir: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    _edit_config(directory, edit)
    with pytest.raises(CheckpointError, match=f"config.json: {message}"):
        load_checkpoint(directory)


def test_the_checks_refuse_the_fault_and_not_the_checkpoint(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    # The same edits with sound values load: the tests above fail on the fault they plant.
    directory = _copy(tiny_checkpoint_dir, tmp_path)
    _edit_weights(directory, _set_value("classifier.bias", 0.25))
    _edit_config(directory, _temperature(0.5))
    loaded = load_checkpoint(directory)
    assert loaded.temperature == 0.5 and loaded.model.classifier.bias[0].item() == 0.25
