"""`Predictor.predict_ids` splits a batch of mixed lengths into ONNX calls over similar
lengths: the answers are those of each review scored alone, in input order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from model.predictor import Predictor, length_group_size
from tests.conftest import build_checkpoint


@pytest.mark.parametrize("rows", [1, 5, 9, 33, 64])
def test_a_mixed_length_batch_answers_as_each_review_alone(tmp_path: Path, rows: int) -> None:
    ckpt = build_checkpoint(tmp_path / "ckpt")
    onnx, eager = Predictor(ckpt, backend="onnx"), Predictor(ckpt, backend="torch")
    rng = random.Random(rows)
    vocab = len(ckpt.pipeline.vocab)
    batch = [[rng.randrange(2, vocab) for _ in range(rng.randint(1, 60))] for _ in range(rows)]
    together = onnx.predict_ids(batch)
    alone = torch.cat([eager.predict_ids([ids]) for ids in batch])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_groups_are_an_eighth_of_the_batch_and_never_tiny() -> None:
    assert [length_group_size(n) for n in (1, 4, 8, 32, 33, 64, 128)] == [4, 4, 4, 4, 5, 8, 16]
