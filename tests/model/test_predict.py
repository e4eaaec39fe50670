"""model.predict --shard I/N and --merge: N shards merged equal one unsharded run."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Callable
from pathlib import Path

import pytest

from model import evaluate, predict
from model.predictor import BACKENDS, prediction_row
from tests.conftest import synthetic_reviews


def run(*args: str) -> int:
    return predict.main([*args, "--no-progress"])


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_shards_merged_equal_one_unsharded_run(
    tiny_checkpoint_dir: Path, tmp_path: Path, shards: int
) -> None:
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(text for text, _ in synthetic_reviews(40, seed=21)) + "\n")
    checkpoint = ["--checkpoint", str(tiny_checkpoint_dir), "--batch-size", "8"]
    whole = tmp_path / "whole.jsonl"
    assert run(str(reviews), *checkpoint, "--out", str(whole)) == 0
    parts = [tmp_path / f"part-{i}.jsonl" for i in range(shards)]
    for i, part in enumerate(parts):
        assert run(str(reviews), *checkpoint, "--shard", f"{i}/{shards}", "--out", str(part)) == 0
        assert [r["index"] for r in rows(part)] == list(range(i, 40, shards))  # every N-th
    merged = tmp_path / "merged.jsonl"
    assert run("--merge", *map(str, reversed(parts)), "--out", str(merged)) == 0
    expected, got = rows(whole), rows(merged)
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert set(a) == set(b)
        for label, p in b["probabilities"].items():
            assert abs(a["probabilities"][label] - p) <= 1e-6


def test_a_missing_part_is_an_error(
    tiny_checkpoint_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("good\nbad\nfine\nawful\n")
    part = tmp_path / "part-0.jsonl"
    assert run(str(reviews), "--checkpoint", str(tiny_checkpoint_dir), "--shard", "0/2",
               "--out", str(part)) == 0
    assert run("--merge", str(part), "--out", str(tmp_path / "all.jsonl")) == 2
    assert "is a shard missing?" in caplog.text


@pytest.mark.parametrize("shard", ["2/2", "-1/3", "1", "a/b", "0/0"])
def test_bad_shard_is_refused(shard: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["reviews.txt", f"--shard={shard}"])
    assert exit_info.value.code == 2
    assert "expected I/N" in capsys.readouterr().err


def test_one_row_shape_for_every_scorer() -> None:
    labels = ["negative", "neutral", "positive"]
    assert prediction_row(labels, [0.2, 0.1, 0.7]) == {
        "label": "positive",
        "confidence": 0.7,
        "probabilities": {"negative": 0.2, "neutral": 0.1, "positive": 0.7},
    }
    with pytest.raises(ValueError):  # a row of another model's width is a bug, not a guess
        prediction_row(labels, [0.5, 0.5])


@pytest.mark.parametrize("parser", [predict.build_parser, evaluate.build_parser])
def test_every_scoring_cli_offers_the_predictors_backends(parser: Callable[[], ArgumentParser]) -> None:
    backend = next(a for a in parser()._actions if a.dest == "backend")
    assert backend.default == "onnx" and tuple(backend.choices or ()) == BACKENDS


def test_sentences_are_scored_alone_and_the_whole_text_answer_is_unchanged(
    tiny_checkpoint_dir: Path, tmp_path: Path
) -> None:
    from model.predictor import Predictor
    from model.sentences import split_sentences

    texts = ["The movie was great. The plot was awful!! The ending 😍 was wonderful.",
             "A film of the director.\tthe music was superb",
             "Boring."]
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    plain, split = tmp_path / "plain.jsonl", tmp_path / "split.jsonl"
    checkpoint = ["--checkpoint", str(tiny_checkpoint_dir), "--unsupported-text", "score"]
    assert run(str(reviews), *checkpoint, "--out", str(plain)) == 0
    assert run(str(reviews), *checkpoint, "--sentences", "--out", str(split)) == 0
    predictor = Predictor.load(tiny_checkpoint_dir)
    for text, before, after in zip(texts, rows(plain), rows(split), strict=True):
        assert {k: v for k, v in after.items() if k not in ("sentences", "mixed")} == before
        spans = [(s["start"], s["end"]) for s in after["sentences"]]
        assert spans == split_sentences(text)
        alone = predictor.predict_texts([text[a:b] for a, b in spans]).tolist()
        for sentence, expected in zip(after["sentences"], alone, strict=True):
            got = [sentence["probabilities"][label] for label in predictor.labels]
            assert got == pytest.approx(expected, abs=1e-5)
        assert isinstance(after["mixed"], bool)


def test_each_row_is_the_texts_prediction_and_reading(tiny_checkpoint_dir: Path) -> None:
    """Rows come from one tokenizing of each text; they must equal scoring the text and judging
    it apart, a text with no token (scored as <unk>) and a long one among them."""
    from model.language import TextReader, present
    from model.predictor import Predictor

    texts = ["", "   ", ":) !!", "a great film", "Ein schrecklicher Film, wirklich.",
             "bad plot " * 600, "good <br /> acting " * 300]
    predictor = Predictor.load(tiny_checkpoint_dir, batch_size=3)
    reader = TextReader(predictor.pipeline)
    for policy in ("score", "flag", "refuse"):
        got = predict.prediction_rows(predictor, texts, progress=False, policy=policy)
        expected = [
            present(prediction_row(predictor.labels, p), reader.read(text), policy)
            for text, p in zip(texts, predictor.predict_texts(texts).tolist(), strict=True)
        ]
        assert got == expected
