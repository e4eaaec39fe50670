"""Token attributions: spans, determinism, completeness, signs, limits, CLI (no dataset)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from model.checkpoint import DEFAULT_CHECKPOINT, Checkpoint
from model.explain import (
    Explanation,
    explain,
    explain_batch,
    explain_batch_detailed,
    main,
)
from model.predictor import Predictor
from model.rnn import pad_batch
from model.text import UNK_ID, tokenize_with_spans
from tests.conftest import build_checkpoint, synthetic_reviews

ROOT = Path(__file__).resolve().parents[2]
OBVIOUS = ["A wonderful film, I loved it.", "An awful film, I hated it."]


def normalise(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).replace("’", "'").lower()


def toward_positive(predictor: Predictor, explanation: Explanation) -> dict[str, float]:
    """Scores of a binary model re-expressed toward the "positive" class, by token."""
    sign = 1.0 if predictor.labels[explanation.label] == "positive" else -1.0
    return {t.token: sign * t.score for t in explanation.tokens}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: extra threads only contend (and the test machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """Random weights, max_tokens=64: for spans, limits and plumbing."""
    return Predictor(build_checkpoint(tmp_path_factory.mktemp("explain") / "tiny"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Predictor:
    """The default tiny BiGRU trained ~2 s on synthetic reviews: it learns the cue words."""
    ckpt = build_checkpoint(tmp_path_factory.mktemp("explain") / "trained", seed=0)
    model, pipeline = ckpt.model, ckpt.pipeline
    data = synthetic_reviews(400, seed=1)
    x = [pipeline.encode(text) for text, _ in data]
    y = torch.tensor([ckpt.labels.index(label) for _, label in data])
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(6):
        for i in range(0, len(x), 32):
            ids, lengths = pad_batch(x[i : i + 32])
            loss = torch.nn.functional.cross_entropy(model(ids, lengths), y[i : i + 32])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    model.eval()
    return Predictor(ckpt)


# ----------------------------------------------------------------------------- spans


SPAN_TEXTS = [
    "A wonderful film, I loved it.",
    "Great acting.<br /><br />But the ending<BR>was awful!!",
    "The ﬁlm was ｗｏｎｄｅｒｆｕｌ — Ⅻ out of ten",  # NFKC changes lengths: ﬁ -> fi
    "I don’t know 😀😀 why, but 🎬 it's superb ?",  # emoji and a curly apostrophe
    "  leading and trailing spaces   ",
]


@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_spans_map_back_to_the_original_text(tiny: Predictor, text: str) -> None:
    tokens = explain(tiny, text)
    assert tokens, "every sample text has words"
    for tok in tokens:
        assert normalise(text[tok.start : tok.end]) == tok.token
    ends = [0] + [t.end for t in tokens]
    assert all(prev <= t.start < t.end for prev, t in zip(ends, tokens, strict=False))
    # exactly the tokens the model reads, in order
    assert tiny.pipeline.vocab.ids([t.token for t in tokens]) == tiny.text_to_ids(text)


def test_spans_are_code_point_offsets_into_the_raw_text(tiny: Predictor) -> None:
    text = "😀 The ﬁlm<br />was ｗｏｎｄｅｒｆｕｌ"
    got = [(t.token, t.start, t.end, text[t.start : t.end]) for t in explain(tiny, text)]
    assert got == [
        ("😀", 0, 1, "😀"),  # astral-plane emoji: one code point, one token
        ("the", 2, 5, "The"),
        ("film", 6, 9, "ﬁlm"),  # one ligature character in the text, two letters in the token
        ("was", 15, 18, "was"),
        ("wonderful", 19, 28, "ｗｏｎｄｅｒｆｕｌ"),
    ]


def test_long_review_covers_exactly_what_the_model_read(tiny: Predictor) -> None:
    words = [f"w{i}" for i in range(150)]  # unknown words: the spans still matter
    text = "<br />".join(" ".join(words[i : i + 10]) for i in range(0, 150, 10))
    tokens = explain(tiny, text)
    config = tiny.pipeline.config
    head = round(config.max_tokens * config.head_fraction)
    assert [t.token for t in tokens] == words[:head] + words[150 - (config.max_tokens - head) :]
    assert all(text[t.start : t.end] == t.token for t in tokens)
    assert len(tokens) == len(tiny.text_to_ids(text)) == config.max_tokens


def test_max_tokens_cap_keeps_head_and_tail(tiny: Predictor) -> None:
    text = " ".join(f"w{i}" for i in range(100))
    full = explain_batch_detailed(tiny, [text])[0]
    capped = explain_batch_detailed(tiny, [text], max_tokens=10)[0]
    head = round(10 * tiny.pipeline.config.head_fraction)
    expected = [f"w{i}" for i in range(head)] + [f"w{i}" for i in range(100 - (10 - head), 100)]
    assert [t.token for t in capped.tokens] == expected
    assert capped.truncated and not full.truncated
    assert capped.label == full.label  # the label explained is always the served prediction
    spans = {(t.start, t.end) for t in tokenize_with_spans(text)}
    assert all((t.start, t.end) in spans for t in capped.tokens)
    assert explain(tiny, "short review", max_tokens=10) == explain(tiny, "short review")
    assert len(explain(tiny, text, max_tokens=1000)) == tiny.pipeline.config.max_tokens


@pytest.mark.parametrize("bad", [0, -3])
def test_invalid_limits_raise(tiny: Predictor, bad: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        explain(tiny, "fine", max_tokens=bad)
    with pytest.raises(ValueError, match="steps"):
        explain(tiny, "fine", steps=bad)


@pytest.mark.parametrize("text", ["", "   ", "... --- ,,,", "<br /><br />"])
def test_texts_without_words_have_empty_explanations(tiny: Predictor, text: str) -> None:
    assert explain(tiny, text) == []


def test_batch_keeps_input_order_and_serialises(tiny: Predictor) -> None:
    texts = ["great plot", "", "the awful ending", "a"]
    batch = explain_batch(tiny, texts)
    assert batch == [explain(tiny, t) for t in texts]
    assert explain_batch(tiny, []) == []
    row = batch[0][0].to_dict()
    assert row == {"token": "great", "start": 0, "end": 5, "score": batch[0][0].score}
    assert isinstance(row["score"], float)
    json.dumps([[t.to_dict() for t in tokens] for tokens in batch])


# ----------------------------------------------------------------------------- determinism


def test_reproducible_and_independent_of_the_batch(tiny: Predictor) -> None:
    text = "The plot was awful but the music was wonderful."
    first = explain(tiny, text)
    assert explain(tiny, text) == first  # bit for bit
    others = ["another review entirely", "x " * 60, text]
    assert explain_batch(tiny, others)[2] == first


def test_leaves_the_model_as_it_found_it(tiny: Predictor) -> None:
    model = tiny.model
    flags = [p.requires_grad for p in model.parameters()]
    eval_scores = explain(tiny, "a wonderful film")
    model.train()  # dropout on: the explanation still runs in eval mode
    try:
        assert explain(tiny, "a wonderful film") == eval_scores
        assert model.training
    finally:
        model.eval()
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_works_under_no_grad_inference_mode_and_in_a_thread(tiny: Predictor) -> None:
    text = "the ending was awful"
    expected = explain(tiny, text)
    with torch.no_grad():
        assert explain(tiny, text) == expected
    with torch.inference_mode():
        assert explain(tiny, text) == expected
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(explain, tiny, text).result() == expected


# ----------------------------------------------------------------------------- faithfulness


def test_completeness_scores_add_up_to_the_margin(trained: Predictor) -> None:
    texts = [*OBVIOUS, "The plot was awful but the music was wonderful and the actor superb."]
    for e in explain_batch_detailed(trained, texts):
        total = sum(t.score for t in e.tokens)
        assert math.isclose(total, e.margin - e.baseline_margin, rel_tol=0.03, abs_tol=0.02)
        # F(x) is the calibrated log-odds of the label /predict serves
        p = e.probabilities
        assert math.isclose(e.margin, math.log(p[e.label] / p[1 - e.label]), abs_tol=1e-4)


def test_baseline_is_the_review_with_every_word_unknown(trained: Predictor) -> None:
    text = "A wonderful zzyzx film, qwxv I loved it."  # two words outside the vocabulary
    (e,) = explain_batch_detailed(trained, [text])
    logits = trained.logits_ids([[UNK_ID] * len(e.tokens)])[0]
    other = logits[1 - e.label]
    assert math.isclose(e.baseline_margin, float(logits[e.label] - other) / trained.temperature, abs_tol=1e-5)
    scores = {t.token: t.score for t in e.tokens}
    assert scores["zzyzx"] == 0.0 and scores["qwxv"] == 0.0  # unknown: nothing to credit


@pytest.mark.parametrize(
    "arch",
    [{"cell": "lstm"}, {"cell": "rnn", "pooling": "last"}, {"labels": ("a", "b", "c"), "num_layers": 2}],
)
def test_completeness_on_other_architectures(tmp_path: Path, arch: dict[str, object]) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt", seed=3, **arch)
    labels = ["a", "b", "c"][: ckpt.model.config.num_classes]
    predictor = Predictor(Checkpoint(ckpt.model, ckpt.pipeline, labels))
    text = "the movie was wonderful and the plot awful"
    (e,) = explain_batch_detailed(predictor, [text], steps=32)
    assert abs(e.completeness_gap) <= 0.03 * abs(e.margin - e.baseline_margin) + 1e-3


def test_sentiment_words_push_their_way(trained: Predictor) -> None:
    positive, negative = explain_batch_detailed(trained, OBVIOUS)
    assert trained.labels[positive.label] == "positive"
    assert trained.labels[negative.label] == "negative"
    pos, neg = toward_positive(trained, positive), toward_positive(trained, negative)
    assert pos["wonderful"] > 0 and pos["loved"] > 0
    assert neg["awful"] < 0 and neg["hated"] < 0
    # both words in one review: opposite signs whatever the verdict
    (mixed,) = explain_batch_detailed(trained, ["The music was wonderful but the plot was awful."])
    scores = toward_positive(trained, mixed)
    assert scores["wonderful"] > 0 > scores["awful"]
    # and the verdict's strongest supporter is a cue word, not filler
    top = max(positive.tokens, key=lambda t: t.score)
    assert top.token in {"wonderful", "loved"}


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.exists(), reason="the shipped model is not built")
def test_shipped_model_signs() -> None:
    predictor = Predictor.load()
    positive, negative = explain_batch_detailed(predictor, OBVIOUS)
    assert toward_positive(predictor, positive)["wonderful"] > 0
    assert toward_positive(predictor, negative)["awful"] < 0
    for e in (positive, negative):
        assert abs(e.completeness_gap) <= 0.05 * abs(e.margin - e.baseline_margin) + 0.05


# ----------------------------------------------------------------------------- CLI


class _Html(HTMLParser):
    """Checks that tags balance; collects token titles and the text of the review."""

    VOID: ClassVar[set[str]] = {"meta", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []  # (tag, inside the review)
        self.titles: list[str] = []
        self.review = ""
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.scripts += tag == "script"
        if tag == "span" and "title" in attributes:
            self.titles.append(attributes["title"] or "")
        if tag not in self.VOID:
            inside = bool(self.stack and self.stack[-1][1]) or attributes.get("class") == "review"
            self.stack.append((tag, inside))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop()[0] == tag, f"unbalanced </{tag}>"

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][1]:
            self.review += data


@pytest.fixture()
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("cli") / "tiny"
    build_checkpoint(directory)
    yield directory


HOSTILE = 'Wonderful <script>alert("x")</script> & "awful" <br /> film\'s end'


def test_cli_prints_and_writes_escaped_html(
    checkpoint_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "why.html"
    argv = ["--checkpoint", str(checkpoint_dir), "--html", str(page), "--color", "never", HOSTILE]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] in {"negative", "positive"}
    assert "Wonderful[" in out and "\x1b[" not in out
    text = page.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;" in text
    parser = _Html()
    parser.feed(text)
    parser.close()
    assert parser.stack == [] and parser.scripts == 0
    assert parser.review == HOSTILE.replace("<br />", "\n")  # the review, verbatim, as text
    n_tokens = len(tokenize_with_spans(HOSTILE))
    assert len(parser.titles) == n_tokens
    assert all(t[0] in "+-" and math.isfinite(float(t)) for t in parser.titles)


def test_cli_colour_follows_tty_and_no_color(
    checkpoint_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--checkpoint", str(checkpoint_dir), "--color", "always", "wonderful"]) == 0
    assert "\x1b[" in capsys.readouterr().out
    assert main(["--checkpoint", str(checkpoint_dir), "wonderful"]) == 0  # captured: not a tty
    assert "\x1b[" not in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["--checkpoint", str(checkpoint_dir), "wonderful"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_cli_reads_stdin_and_marks_skipped_middle(
    checkpoint_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    review = " ".join(["good"] * 10 + ["middle"] * 30 + ["bad"] * 10)
    monkeypatch.setattr(sys, "stdin", io.StringIO(review))
    argv = ["--checkpoint", str(checkpoint_dir), "--max-tokens", "8", "--color", "never", "-"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[…]" in out and "middle" not in out
    assert out.count("good[") == 2 and out.count("bad[") == 6


def test_cli_never_prints_control_characters_from_the_review(
    checkpoint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    review = "wonderful \x1b[2J\x1b]0;pwned\x07 film\r\nend"
    for color in ("never", "always"):
        assert main(["--checkpoint", str(checkpoint_dir), "--color", color, review]) == 0
        out = capsys.readouterr().out
        assert "\x1b[2J" not in out and "\x1b]" not in out and "\x07" not in out
        assert "\\x1b[" in out and "\\x07" in out  # shown escaped instead


@pytest.mark.parametrize(
    "argv",
    [["--checkpoint", "/nonexistent/ckpt", "text"], ["--max-tokens", "0", "text"]],
)
def test_cli_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_corrupt_checkpoint(checkpoint_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkpoint_dir / "model.safetensors").write_bytes(b"not weights")
    assert main(["--checkpoint", str(checkpoint_dir), "text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sha256" in err and err.count("\n") == 1


def test_cli_as_a_module(checkpoint_dir: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "model.explain", "--checkpoint", str(checkpoint_dir), "-"],
        input="An awful film.",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert "awful[" in run.stdout and "\x1b[" not in run.stdout
