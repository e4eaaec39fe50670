import io
import json
import tarfile
from pathlib import Path

import pytest

from model.data import (
    DataError,
    load_examples,
    normalise_label,
    read_aclimdb_unlabelled,
    read_csv,
    read_jsonl,
    read_texts,
)

FILES = {
    "aclImdb/train/pos/0_9.txt": "A joy.<br /><br />Loved it.",
    "aclImdb/train/pos/1_8.txt": "Great cast.",
    "aclImdb/train/neg/0_2.txt": "Dull and slow.",
    "aclImdb/test/neg/5_1.txt": "Worst film ever.",
    "aclImdb/test/pos/5_10.txt": "Perfect.",
    "aclImdb/train/unsup/7_0.txt": "Saw it on Tuesday.",
}


def _write_tree(root: Path) -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "aclImdb"


def _write_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("source", ["dir", "parent", "tar"])
def test_aclimdb_layouts(tmp_path: Path, source: str) -> None:
    if source == "tar":
        path = _write_tar(tmp_path / "imdb.tar.gz")
    else:
        path = _write_tree(tmp_path)
        path = path if source == "dir" else tmp_path
    train, report = load_examples(path, split="train")
    assert sorted((e.label, e.text) for e in train) == [
        ("negative", "Dull and slow."),
        ("positive", "A joy.<br /><br />Loved it."),
        ("positive", "Great cast."),
    ]
    assert report.read == 3 and not report.bad
    test, _ = load_examples(path, split="test")
    assert sorted(e.label for e in test) == ["negative", "positive"]
    assert read_aclimdb_unlabelled(path) == ["Saw it on Tuesday."]


def test_not_a_tarball(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DataError, match="broken.tar.gz: not a readable tar archive"):
        load_examples(bad)


CSV = 'review,sentiment\n"Great, really great",positive\n,negative\n"Bad film",\n"Meh",negative\n'


def test_csv_counts_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(CSV)
    examples, report = read_csv(path, "review", "sentiment")
    assert [(e.text, e.label) for e in examples] == [
        ("Great, really great", "positive"), ("Meh", "negative"),
    ]
    assert report.read == 4 and [line for line, _ in report.bad] == [3, 4]
    assert "2 bad" in report.summary()
    with pytest.raises(DataError, match=r"reviews.csv: line 3: missing or empty 'review'"):
        read_csv(path, "review", "sentiment", strict=True)
    assert read_csv(path)[0] == examples  # review/sentiment columns are found without help
    other = tmp_path / "other.csv"
    other.write_text("words,mood\nfine,1\n")
    with pytest.raises(DataError, match=r"other.csv: line 1: no text column among \['words', 'mood'\]"):
        read_csv(other)
    with pytest.raises(DataError, match="line 1: no label column 'stars' in the header"):
        read_csv(path, "review", "stars")


def test_jsonl_counts_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    rows = [
        json.dumps({"text": "Loved it", "label": 1}),
        "{broken",
        json.dumps([1, 2]),
        "",
        json.dumps({"text": "Hated it", "label": 0}),
        json.dumps({"text": "   ", "label": 0}),
    ]
    path.write_text("\n".join(rows) + "\n")
    examples, report = read_jsonl(path)
    assert [(e.text, e.label) for e in examples] == [("Loved it", "positive"), ("Hated it", "negative")]
    assert [line for line, _ in report.bad] == [2, 3, 6]
    with pytest.raises(DataError, match="reviews.jsonl: line 2: invalid JSON"):
        read_jsonl(path, strict=True)


def test_format_detection_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_examples(tmp_path / "nope.csv")
    odd = tmp_path / "reviews.xml"
    odd.write_text("<x/>")
    with pytest.raises(DataError, match="can't tell the format"):
        load_examples(odd)


def test_read_texts_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first review\n\nsecond review\n")
    assert read_texts(tmp_path / "a.txt") == ["first review", "second review"]
    (tmp_path / "a.csv").write_text("text,id\nhello,1\n")
    assert read_texts(tmp_path / "a.csv") == ["hello"]
    (tmp_path / "a.jsonl").write_text('{"text": "hi"}\n{"body": "x"}\n')
    with pytest.raises(DataError, match="line 2: no string field 'text'"):
        read_texts(tmp_path / "a.jsonl")


def test_tsv_with_glue_header_and_unquoted_text(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text('label\tcontent\n0\tit \'s a "charming" , dull film .\n1\tloved it\n')
    examples, report = load_examples(path)
    assert [(e.text, e.label) for e in examples] == [
        ('it \'s a "charming" , dull film .', "negative"), ("loved it", "positive"),
    ]
    assert report.read == 2 and not report.bad


@pytest.mark.parametrize("raw,expected", [
    ("0", "negative"), ("1", "positive"), ("neg", "negative"), ("POS", "positive"),
    (" Negative ", "negative"), ("positive", "positive"), ("neutral", "neutral"), ("NEU", "neutral"),
])
def test_labels_map_onto_one_label_set(raw: str, expected: str) -> None:
    assert normalise_label(raw) == expected


def test_a_label_that_maps_nowhere_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("text,label\ngood,pos\nmeh,mixed\n")
    with pytest.raises(DataError, match=r"mine.csv: line 3: label 'mixed' maps to no class"):
        load_examples(csv_path)
    jsonl_path = tmp_path / "mine.jsonl"
    jsonl_path.write_text('{"text": "ok", "label": 1}\n{"text": "ok", "label": 3}\n')
    with pytest.raises(DataError, match=r"mine.jsonl: line 2: label '3' maps to no class"):
        load_examples(jsonl_path)


@pytest.mark.parametrize("source", ["dir", "tar"])
def test_aclimdb_reviews_carry_their_movie_as_group(tmp_path: Path, source: str) -> None:
    path = _write_tar(tmp_path / "imdb.tar.gz") if source == "tar" else _write_tree(tmp_path)
    urls = tmp_path / "urls"
    urls.mkdir()
    (urls / "urls_pos.txt").write_text(
        "http://www.imdb.com/title/tt0001/usercomments\nhttp://www.imdb.com/title/tt0002/usercomments\n"
    )
    (urls / "urls_neg.txt").write_text("http://www.imdb.com/title/tt0001/usercomments\n")
    train, _ = load_examples(path, split="train", urls=urls)
    assert sorted((e.text, e.group) for e in train) == [
        ("A joy.<br /><br />Loved it.", "tt0001"), ("Dull and slow.", "tt0001"), ("Great cast.", "tt0002"),
    ]
    (urls / "urls_neg.txt").write_text("")
    with pytest.raises(DataError, match="no movie for neg/0"):
        load_examples(path, split="train", urls=urls)


def test_ratings_decide_labels_by_the_documented_rule(tmp_path: Path) -> None:
    stars = tmp_path / "stars.tsv"
    stars.write_text(
        "text\tstars\tdomain\n"
        "Broke in a day.\t1\tkitchen\nMeh.\t2\tkitchen\nIt works.\t3\tbooks\n"
        "Nice.\t4\tbooks\nSuperb.\t5\t\nNo rating.\t\tbooks\n"
    )
    examples, report = load_examples(stars)
    assert [(e.label, e.domain) for e in examples] == [
        ("negative", "kitchen"), ("negative", "kitchen"), ("neutral", "books"),
        ("positive", "books"), ("positive", ""),
    ]
    assert report.bad == [(7, "missing 'label'")]
    fine = tmp_path / "fine.tsv"
    fine.write_text("text\tlabel\tfine\nA.\tnegative\t0\nB.\tnegative\t1\nC.\tneutral\t2\n"
                    "D.\tpositive\t3\nE.\tpositive\t4\nF.\tpositive\t2\n")
    examples, report = load_examples(fine)
    assert [e.label for e in examples] == ["negative", "negative", "neutral", "positive", "positive"]
    assert report.bad == [(7, "label 'positive' contradicts the rating ('neutral')")]
