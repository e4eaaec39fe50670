"""`Predictor.predict_ids` splits a batch of mixed lengths into ONNX calls over similar
lengths: the answers are those of each review scored alone, in input order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from model.predictor import Predictor, length_groups
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


def test_a_call_pads_no_row_past_one_and_a_half_times_its_length() -> None:
    lengths = [400, 30, 390, 12, 200, 5, 280, 8]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        longest = max(lengths[i] for i in group)
        assert all(2 * longest <= 3 * lengths[i] + 16 for i in group), group
    assert length_groups([100, 90, 80]) == [[0, 1, 2]]  # similar lengths: one call
