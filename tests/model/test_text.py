from model.text import (
    PAD_ID,
    UNK_ID,
    TextConfig,
    TextPipeline,
    Vocabulary,
    tokenize,
    tokenize_with_spans,
    truncate,
)


def test_tokenize_normalises_breaks_case_and_unicode() -> None:
    text = "GREAT film!<br /><br />Don’t miss it?! Ｆｕｌｌ-width ﬁne"
    assert tokenize(text) == [
        "great", "film", "!", "don't", "miss", "it", "?", "!", "full", "width", "fine",
    ]
    assert tokenize("Keep Case", lowercase=False) == ["Keep", "Case"]


def test_spans_index_the_original_text() -> None:
    text = "Loved it<br />SO much — ﬁne 👍 ありがとう"
    tokens = tokenize_with_spans(text)
    assert [t.text for t in tokens] == tokenize(text)
    for tok in tokens:
        assert text[tok.start : tok.end].lower().replace("ﬁ", "fi") == tok.text


def test_vocabulary_is_deterministic_frequency_then_token() -> None:
    docs = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    vocab = Vocabulary.build(docs, min_freq=1, max_size=10)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert Vocabulary.build(list(reversed(docs)), 1, 10).tokens == vocab.tokens
    assert Vocabulary.build(docs, min_freq=2, max_size=10).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(docs, min_freq=1, max_size=3).tokens == ["<pad>", "<unk>", "a"]
    assert vocab.ids(["a", "zzz"]) == [2, UNK_ID]
    assert PAD_ID == 0


def test_truncation_keeps_head_and_tail() -> None:
    items = list(range(10))
    assert truncate(items, 4, 0.25) == [0, 7, 8, 9]
    assert truncate(items, 4, 0.5) == [0, 1, 8, 9]
    assert truncate(items, 20, 0.5) == items


def test_pipeline_encode_is_deterministic_and_never_empty() -> None:
    texts = ["a good film", "a bad film", "good good bad"]
    config = TextConfig(min_freq=1, max_tokens=3)
    first, second = TextPipeline.fit(texts, config), TextPipeline.fit(texts, config)
    assert first.vocab.tokens == second.vocab.tokens
    assert first.encode("a good film indeed") == second.encode("a good film indeed")
    assert len(first.encode("good " * 50)) == 3
    assert first.encode("!!!") != [] and first.encode("") == [UNK_ID]
    ids, spans = first.encode_with_spans("a good unknownword film")
    assert ids == first.encode("a good unknownword film")
    assert [s.text for s in spans] == ["a", "unknownword", "film"]


def test_token_entry_points_agree_with_the_text_ones() -> None:
    texts = ["a good film", "a bad film", "good good bad!"]
    config = TextConfig(min_freq=1, max_tokens=3)
    from_text = TextPipeline.fit(texts, config)
    from_tokens = TextPipeline.fit_tokens([tokenize(t) for t in texts], config)
    assert from_text.vocab.tokens == from_tokens.vocab.tokens
    review = "A good, good film with a bad ending!"
    assert from_text.encode(review) == from_text.encode_tokens(tokenize(review))
