"""Checkpoints that are data, not code: a directory of safetensors weights plus JSON.

    model.safetensors  weights (no pickle, nothing executable)
    config.json        format version, architecture, text settings, labels, temperature, metrics
    vocab.json         the vocabulary, id order
    manifest.json      sha256 of every other file

Loading verifies all of it and raises `CheckpointError` with one message naming the file and
the problem. Writing goes to a temporary directory that is renamed into place, so an
interrupted run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.rnn import ModelConfig, SentimentRNN
from model.text import TOKENIZER, TextConfig, TextPipeline, Vocabulary

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
VOCAB = "vocab.json"
MANIFEST = "manifest.json"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "artifacts" / "review-sentiment"


class CheckpointError(RuntimeError):
    """A checkpoint that can't be used; the message names the file and the problem."""


@dataclass
class Checkpoint:
    model: SentimentRNN
    pipeline: TextPipeline
    labels: list[str]
    temperature: float = 1.0  # logits are divided by this before softmax (calibration)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. training command and time
    sha256: str = ""  # of the manifest: identifies the exact files loaded
    path: Path | None = None

    @property
    def model_id(self) -> str:
        name = self.path.name if self.path else "model"
        return f"{name}@{self.sha256[:12]}" if self.sha256 else name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(ckpt: Checkpoint, directory: str | Path) -> Path:
    """Write `ckpt` to `directory` atomically (replacing any checkpoint already there)."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in ckpt.model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format_version": str(FORMAT_VERSION)})
        config = {
            "format_version": FORMAT_VERSION,
            "architecture": ckpt.model.config.to_dict(),
            "text": ckpt.pipeline.config.to_dict(),
            "labels": list(ckpt.labels),
            "temperature": float(ckpt.temperature),
            "metrics": ckpt.metrics,
            "extra": ckpt.extra,
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / VOCAB).write_text(json.dumps(ckpt.pipeline.vocab.tokens, ensure_ascii=False))
        files = {name: _sha256(tmp / name) for name in (WEIGHTS, CONFIG, VOCAB)}
        manifest = {"format_version": FORMAT_VERSION, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for name in (*files, MANIFEST):
            os.chmod(tmp / name, 0o644)  # readable by a non-root server (mkdtemp's files are private)
            with (tmp / name).open("rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def _verify_manifest(directory: Path) -> str:
    """Check every file against the manifest; return the manifest's own sha256."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path}: missing file")
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{manifest_path}: no 'files' table")
    _check_version(manifest_path, manifest.get("format_version"))
    for name in (WEIGHTS, CONFIG, VOCAB):
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing file")
        expected = manifest["files"].get(name)
        if expected is None:
            raise CheckpointError(f"{manifest_path}: no sha256 listed for {name}")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"{path}: sha256 differs from the manifest (file corrupted or modified)"
            )
    return _sha256(manifest_path)


def _check_version(path: Path, version: object) -> None:
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown format version {version!r} (this code reads {FORMAT_VERSION})"
        )


def load_checkpoint(directory: str | Path | None = None) -> Checkpoint:
    """Load and verify a checkpoint directory (default: the shipped IMDB model)."""
    directory = Path(directory) if directory is not None else DEFAULT_CHECKPOINT
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (missing)")
    sha = _verify_manifest(directory)

    config = _read_json(directory / CONFIG)
    if not isinstance(config, dict):
        raise CheckpointError(f"{directory / CONFIG}: not a JSON object")
    _check_version(directory / CONFIG, config.get("format_version"))
    try:
        model_config = ModelConfig.from_dict(config["architecture"])
        text_config = TextConfig.from_dict(config["text"])
        labels = [str(label) for label in config["labels"]]
        temperature = float(config.get("temperature", 1.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / CONFIG}: invalid or missing field ({exc})") from exc
    if text_config.tokenizer != TOKENIZER:
        raise CheckpointError(
            f"{directory / CONFIG}: its vocabulary was built by tokenizer {text_config.tokenizer!r}, "
            f"but this code tokenizes with {TOKENIZER!r}: the same text would give other ids. "
            "Retrain it (python -m model.train) or load it with the release that wrote it"
        )
    if len(labels) != model_config.num_classes:
        raise CheckpointError(
            f"{directory / CONFIG}: {len(labels)} labels for {model_config.num_classes} classes"
        )
    if not temperature > 0:
        raise CheckpointError(f"{directory / CONFIG}: temperature must be > 0")

    tokens = _read_json(directory / VOCAB)
    try:
        vocab = Vocabulary(tokens)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{directory / VOCAB}: invalid vocabulary ({exc})") from exc
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(
            f"{directory / VOCAB}: {len(vocab)} tokens but the architecture says "
            f"vocab_size={model_config.vocab_size}"
        )

    model = SentimentRNN(model_config)
    _load_weights(model, directory / WEIGHTS)
    model.eval()
    return Checkpoint(
        model=model,
        pipeline=TextPipeline(text_config, vocab),
        labels=labels,
        temperature=temperature,
        metrics=config.get("metrics", {}),
        extra=config.get("extra", {}),
        sha256=sha,
        path=directory,
    )


def _load_weights(model: SentimentRNN, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: unreadable weights, truncated or corrupted ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights don't match the architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: shape mismatch for {name}: file has {tuple(tensor.shape)}, "
                f"architecture needs {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
    model.load_state_dict(state)
