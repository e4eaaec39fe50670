"""`SentimentModel.decode` (the request path) gives the ids `TextPipeline.encode` gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from model.checkpoint import load_checkpoint
from model.text import TextConfig, TextPipeline
from service.runtime.sentiment_model import SentimentModel

TEXTS = [
    "A gerat film, the ploot drags :-) 8 / 10",  # typos read as neighbours with spelling on
    "wonderfull " * 300 + "five stars",  # long: only its ends are tokenized
    "Bad. " * 200 + "3 out of 5 <br /><br /> it doesn't work " * 40 + "😀👍🏽",
    "x",
]


@pytest.mark.parametrize("spelling", [False, True])
@pytest.mark.parametrize("text", TEXTS)
def test_decode_equals_the_pipeline(tiny_checkpoint_dir: Path, spelling: bool, text: str) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint_dir)
    pipeline = checkpoint.pipeline
    config = dataclasses.replace(pipeline.config, spelling=spelling, max_tokens=32)
    checkpoint.pipeline = TextPipeline(config, pipeline.vocab)
    assert SentimentModel(checkpoint).decode(text) == checkpoint.pipeline.encode(text)


def test_decode_finds_nothing_in_a_text_without_tokens(tiny_checkpoint_dir: Path) -> None:
    model = SentimentModel(load_checkpoint(tiny_checkpoint_dir))
    assert model.decode("<br /> \u200b ::)") == []  # the pipeline's encode would give [<unk>]


def test_spelling_changes_the_ids_of_the_typo_text(tiny_checkpoint_dir: Path) -> None:
    # Guards the test above: with spelling on, decode must follow the neighbours too.
    vocab = load_checkpoint(tiny_checkpoint_dir).pipeline.vocab
    on, off = (TextPipeline(TextConfig(spelling=flag), vocab).encode(TEXTS[0]) for flag in (True, False))
    assert on != off
