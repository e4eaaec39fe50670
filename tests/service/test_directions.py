"""service/inference.py: the shipped model behind the served-model contract, and the choice
of running a small batch's two directions in parallel."""

from __future__ import annotations

from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.predictor import Predictor
from service.inference import DirectionChooser, SentimentModel
from service.served import Explainable, ServedModel


def test_the_chooser_measures_both_then_prefers_the_cheaper_and_keeps_checking() -> None:
    chooser = DirectionChooser(explore_every=5, warm_up=2)
    cost = {True: 1.0, False: 2.0}  # seconds per call of 10 tokens: parallel is cheaper
    picks = []
    for _ in range(20):
        parallel = chooser.pick()
        picks.append(parallel)
        chooser.record(parallel, cost[parallel], 10)
    assert picks[:4] == [False, True, False, True]  # warm-up: both measured
    settled = picks[4:]
    assert settled.count(False) == sum(1 for n in range(5, 21) if n % 5 == 0)  # explorations only
    cost[True] = 5.0  # a busy machine: the second thread now costs more than it saves
    for _ in range(30):
        parallel = chooser.pick()
        chooser.record(parallel, cost[parallel], 10)
    assert [chooser.pick() for _ in range(4)].count(False) >= 3


def test_sentiment_model_answers_the_same_in_either_mode(tiny_checkpoint_dir: Path) -> None:
    model = SentimentModel(load_checkpoint(tiny_checkpoint_dir))
    assert isinstance(model, ServedModel) and isinstance(model, Explainable)
    plain = Predictor.load(tiny_checkpoint_dir)
    batches = [[model.decode("a good film")], [model.decode("bad"), model.decode("fine and good")]]
    for _ in range(3):  # the warm-up alternates the two modes
        for batch in batches:
            expected = plain.predict_ids(batch)
            torch.testing.assert_close(torch.tensor(model.predict(batch)), expected, rtol=0, atol=1e-5)
    assert min(model.directions.samples.values()) >= 2
