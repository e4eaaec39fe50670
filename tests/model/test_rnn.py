import pytest
import torch

from model.rnn import (
    ModelConfig,
    SentimentRNN,
    format_parameter_summary,
    pad_batch,
    parameter_summary,
)


def test_parameter_summary_matches_the_classic_example() -> None:
    config = ModelConfig(
        vocab_size=62, embed_dim=100, hidden_dim=128, cell="rnn", bidirectional=False,
        pooling="last", num_classes=2,
    )
    model = SentimentRNN(config)
    assert parameter_summary(model) == [("embedding", 6_200), ("rnn", 29_440), ("classifier", 258)]
    assert "35,898" in format_parameter_summary(model)


def test_bad_cell_or_pooling_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        ModelConfig(vocab_size=10, cell="transformer")
    with pytest.raises(ValueError, match="unknown pooling"):
        ModelConfig(vocab_size=10, pooling="attention")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "maxmean"])
def test_padding_never_changes_an_answer(cell: str, bidirectional: bool, pooling: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50, embed_dim=8, hidden_dim=6, num_layers=2, cell=cell,
        bidirectional=bidirectional, pooling=pooling,
    )
    model = SentimentRNN(config).eval()
    short = [5, 7, 9]
    others = [[3] * 17, [4, 8, 12, 16, 20, 24, 28, 32, 33, 34], [2] * 30]
    with torch.no_grad():
        alone = torch.softmax(model(*pad_batch([short])), dim=1)
        ids, lengths = pad_batch([others[0], short, *others[1:]])
        batched = torch.softmax(model(ids, lengths), dim=1)[1]
    assert torch.allclose(alone[0], batched, atol=1e-5)


def test_output_shape_and_pad_batch() -> None:
    ids, lengths = pad_batch([[1, 2, 3], [4]])
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and lengths.tolist() == [3, 1]
    one_ids, one_length = pad_batch([[7, 8]])  # the lone-review shortcut: same types and shapes
    assert one_ids.tolist() == [[7, 8]] and one_length.tolist() == [2]
    assert (one_ids.dtype, one_length.dtype) == (ids.dtype, lengths.dtype)
    model = SentimentRNN(ModelConfig(vocab_size=10, num_classes=3, embed_dim=4, hidden_dim=4))
    assert model(ids, lengths).shape == (2, 3)
