import csv
import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from model import evaluate, predict, train
from model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint, save_checkpoint
from model.metrics import expected_calibration_error, fit_temperature, macro_f1
from model.rnn import Architecture
from model.text import TOKENIZER, TextPipeline
from tests.conftest import synthetic_reviews, write_synthetic_csv

_write_csv = write_synthetic_csv


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
    assert train.main(["--data", str(data), "--out", str(tmp_path / "dry"), "--dry-run",
                       "--cell", "lstm", "--num-layers", "2", "--embed-dim", "8"]) == 0
    assert (tmp_path / "dry" / "model.safetensors").exists()
    written = load_checkpoint(tmp_path / "dry").model.config  # config.json loads as it was written
    assert (written.cell, written.num_layers, written.embed_dim) == ("lstm", 2, 8)
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


def _write_tsv(path: Path, n: int, seed: int, short: bool = True) -> Path:
    """An SST-2-like TSV: `label<TAB>sentence`, 0/1 labels, short texts."""
    rows = synthetic_reviews(n, seed)
    lines = ["label\tsentence"]
    for text, label in rows:
        words = text.split()[:8] if short else text.split()
        lines.append(f"{1 if label == 'positive' else 0}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_is_built_from_train_config_and_the_models_architecture() -> None:
    parser = train.build_parser()
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    fields = {f.name: f for f in dataclasses.fields(train.TrainConfig) if f.name != "model"}
    architecture = {f.name: f for f in dataclasses.fields(Architecture)}
    assert not set(fields) & set(architecture)
    assert set(flags) == set(fields) | set(architecture)
    for name, f in {**fields, **architecture}.items():
        assert flags[name].help == f.metadata["help"]  # every field documented, one source
        if f.default is not dataclasses.MISSING and not isinstance(flags[name].default, list):
            assert flags[name].default == f.default
    cfg = train.config_from_args(parser.parse_args(
        ["--data", "a.csv", "--data", "b.tsv", "--weight", "1", "--weight", "0.5", "--out", "o",
         "--no-bidirectional", "--hidden-dim", "7", "--num-layers", "2"]))
    assert cfg.data == ["a.csv", "b.tsv"] and cfg.weights == [1.0, 0.5] and cfg.val_data == []
    assert cfg.model == Architecture(bidirectional=False, hidden_dim=7, num_layers=2)
    with pytest.raises(SystemExit):  # the model's own choices are the flag's
        parser.parse_args(["--data", "a", "--out", "o", "--pooling", "attention"])
    with pytest.raises(ValueError, match="2 --weight values for 1 --data"):
        train.TrainConfig(data=["a"], weight=[1, 2], out="o")


def test_training_defaults_to_the_shipped_models_architecture() -> None:
    shipped = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["architecture"]
    default = train.TrainConfig(data=["a.csv"], out="o").model
    assert default.sized(shipped["vocab_size"], shipped["num_classes"]).to_dict() == shipped


def test_epoch_sample_follows_the_weights() -> None:
    rng = random.Random(0)
    picked = train.epoch_sample([100, 1000], [1.0, 1.0], 400, rng)
    assert len(picked) == 400
    assert sum(i < 100 for i in picked) == 200  # the small source is drawn twice over
    assert len({i for i in picked if i >= 100}) == 200  # the large one without repeats


def _write_long_csv(path: Path, n: int, seed: int) -> Path:
    """Reviews of several sentences and > 100 words, each sentence a synthetic review."""
    parts = synthetic_reviews(n * 6, seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = parts[2 * i][1] if i % 2 == 0 else parts[2 * i + 1][1]
            same = [t for t, lab in parts if lab == label][3 * (i // 2) : 3 * (i // 2) + 6]
            writer.writerow([" ".join(same), label])
    return path


def test_two_sources_train_one_model_with_per_source_and_length_metrics(tmp_path: Path) -> None:
    long_reviews = _write_long_csv(tmp_path / "long.csv", 200, seed=11)
    short = _write_tsv(tmp_path / "short.tsv", 300, seed=12)
    dev = _write_tsv(tmp_path / "sentences.tsv", 80, seed=13)
    out = tmp_path / "multi"
    assert train.main([
        "--data", str(long_reviews), "--data", str(short), "--weight", "1", "--weight", "2",
        "--val-data", str(dev), "--out", str(out), "--embed-dim", "16",
        "--hidden-dim", "16", "--min-freq", "1", "--lr", "0.01", "--augment", "0.1",
        "--crops", "0.1", "--seed", "4", "--epochs", "8", "--patience", "8",
        "--calibration-sets", "sentences",
    ]) == 0
    ckpt = load_checkpoint(out)
    metrics = ckpt.metrics
    assert set(metrics["by_source"]) >= {"long", "short", "sentences"}
    assert metrics["sources"]["short"]["weight"] == 2.0
    assert {"rules", "crops"} <= set(metrics["sources"]) and "crops-of-validation" in metrics["by_source"]
    assert ">100" in metrics["by_source"]["long"]["by_length"]
    for row in metrics["by_source"].values():
        assert {"n", "accuracy", "f1", "ece", "nll", "by_length"} <= set(row)
    assert metrics["validation"]["n"] == 80  # the temperature was fitted on that set alone
    assert set(metrics["by_source"]["sentences"]["by_length"]) == {"<=20"}
    assert metrics["by_source"]["sentences"]["accuracy"] >= 0.8
    assert train.source_name("../data/sst2/dev.tsv") == "sst2/dev"
    assert ckpt.pipeline.config.tokenizer == TOKENIZER


def test_unknown_calibration_set_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _write_csv(tmp_path / "d.csv", 60, seed=7)
    assert train.main(["--data", str(data), "--out", str(tmp_path / "o"), "--dry-run",
                       "--calibration-sets", "nope"]) == 2
    assert "--calibration-sets ['nope']: no such validation set; have ['d']" in caplog.text


def test_finetuning_adds_new_words_and_adapts(tmp_path: Path) -> None:
    base = tmp_path / "base"
    assert train.main(["--data", str(_write_csv(tmp_path / "b.csv", 300, seed=21)), "--out",
                       str(base), "--epochs", "3", "--embed-dim", "16", "--hidden-dim", "16",
                       "--min-freq", "1", "--lr", "0.01"]) == 0
    # The new domain speaks of its own words: "zesty" is good, "soggy" bad.
    mine = tmp_path / "mine.csv"
    rng = random.Random(3)
    rows = [("zesty", "positive"), ("soggy", "negative")] * 100
    with mine.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for word, label in rows:
            writer.writerow([f"the {rng.choice(['soup', 'bread', 'tea'])} was {word}", label])
    tuned = tmp_path / "tuned"
    assert train.main(["--init-from", str(base), "--data", str(mine), "--out", str(tuned),
                       "--epochs", "8", "--patience", "4", "--finetune-lr", "0.005",
                       "--val-fraction", "0.2"]) == 0
    before, after = load_checkpoint(base), load_checkpoint(tuned)
    assert after.model.config.hidden_dim == before.model.config.hidden_dim
    assert after.pipeline.vocab.tokens[: len(before.pipeline.vocab)] == before.pipeline.vocab.tokens
    assert {"zesty", "soggy"} <= set(after.pipeline.vocab.tokens)
    assert after.extra["fine_tuned_from"] == str(base)
    from model.predictor import Predictor

    probs = Predictor(after).predict_texts(["the tea was zesty", "the bread was soggy"])
    assert probs[0, 1] > 0.5 > probs[1, 1]


def test_evaluate_several_sets_prints_rows(trained: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, heldout = trained
    short = _write_tsv(tmp_path / "short.tsv", 60, seed=31)
    assert evaluate.main(["--checkpoint", str(out), "--data", str(heldout), "--data", str(short),
                          "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["set"] for r in rows] == ["heldout", "short"] and rows[1]["n"] == 60
    assert all({"n", "accuracy", "f1", "ece", "nll", "by_length"} <= set(r) for r in rows)
    assert evaluate.main(["--checkpoint", str(out), "--data", str(heldout), "--data", str(short),
                          "--by-length", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "heldout" in table and "short" in table and "<=20 tokens" in table


def test_a_checkpoint_of_another_tokenizer_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = trained
    copy = tmp_path / "old"
    ckpt = load_checkpoint(out)
    ckpt.pipeline = TextPipeline(dataclasses.replace(ckpt.pipeline.config, tokenizer="words/1"),
                                 ckpt.pipeline.vocab)
    save_checkpoint(ckpt, copy)
    with pytest.raises(CheckpointError, match="built by tokenizer 'words/1'.*Retrain"):
        load_checkpoint(copy)


def test_a_grouped_split_keeps_each_group_on_one_side() -> None:
    from model.data import Example

    examples = [Example(f"t{i}", "positive", group=f"movie{i % 7}") for i in range(70)]
    kept, held = train.split_examples(examples, 0.2, seed=1)
    assert {e.group for e in kept}.isdisjoint({e.group for e in held})
    assert 10 <= len(held) <= 20 and len(kept) + len(held) == 70


def _write_rated(path: Path, n: int, seed: int) -> Path:
    """A star-rated TSV with a domain column: 1-2 stars negative words, 3 only neutral words."""
    from tests.conftest import NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS

    rng = random.Random(seed)
    with path.open("w") as handle:
        handle.write("text\tstars\tdomain\n")
        for i in range(n):
            stars = 1 + i % 5
            words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(4, 12))]
            cue = NEGATIVE_WORDS if stars <= 2 else POSITIVE_WORDS if stars >= 4 else []
            for word in rng.sample(cue, 2) if cue else []:
                words.insert(rng.randrange(len(words) + 1), word)
            handle.write(f"{' '.join(words)}\t{stars}\t{rng.choice(['books', 'kitchen'])}\n")
    return path


def test_three_classes_from_a_binary_and_a_rated_source(tmp_path: Path) -> None:
    binary = _write_csv(tmp_path / "binary.csv", 300, seed=31)
    rated = _write_rated(tmp_path / "rated.tsv", 400, seed=32)
    out = tmp_path / "three"
    assert train.main([
        "--data", str(binary), "--data", str(rated), "--out", str(out), "--embed-dim", "16",
        "--hidden-dim", "16", "--min-freq", "1", "--lr", "0.01", "--epochs", "8", "--patience", "8",
        "--seed", "5", "--val-fraction", "0.2",
    ]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.labels == ["negative", "neutral", "positive"]
    rows = ckpt.metrics["by_source"]
    # The binary set is read as positive vs negative; the rated one in all three classes.
    assert rows["binary"]["classes"] == ["negative", "positive"]
    assert rows["rated"]["classes"] == ["negative", "neutral", "positive"]
    assert rows["binary"]["accuracy"] >= 0.9 and rows["rated"]["accuracy"] >= 0.8
    assert set(rows["rated"]["by_domain"]) == {"books", "kitchen"}
    assert {"recall", "ece"} <= set(rows["rated"])
    from model.predictor import Predictor

    probs = Predictor(ckpt).predict_texts(["the plot of the film", "great superb", "awful worst"])
    assert probs.argmax(1).tolist() == [1, 2, 0]
    # Binary data fine-tunes a three-class model's polar classes; the labels stay three.
    tuned = tmp_path / "tuned"
    assert train.main(["--init-from", str(out), "--data", str(binary), "--out", str(tuned),
                       "--epochs", "1", "--val-fraction", "0.2"]) == 0
    assert load_checkpoint(tuned).labels == ckpt.labels


def test_whole_sources_are_never_split(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _write_csv(tmp_path / "d.csv", 60, seed=7)
    dev = _write_csv(tmp_path / "held.csv", 20, seed=8)
    out = tmp_path / "o"
    assert train.main(["--data", str(data), "--whole", "d", "--val-data", str(dev), "--out", str(out),
                       "--dry-run"]) == 0
    assert set(load_checkpoint(out).metrics["by_source"]) == {"held"}
    assert train.main(["--data", str(data), "--whole", "nope", "--out", str(out), "--dry-run"]) == 2
    assert "--whole ['nope']: no such source" in caplog.text
