"""Readers for labelled reviews: the aclImdb layout (directory or .tar.gz), CSV, TSV and JSONL.

Text and label columns are detected from common names unless given; labels are mapped onto
one label set (`0`/`neg`/`negative` -> `negative`, `neutral`/`neu` -> `neutral`,
`1`/`pos`/`positive` -> `positive`), and a label that maps nowhere is an error naming the file
and line. Where a row carries a rating instead of (or beside) a label, the rating decides by a
fixed rule: `stars` 1-2 negative, 3 neutral, 4-5 positive; SST-5's `fine` 0-1 negative, 2
neutral, 3-4 positive. A label that contradicts its row's rating is a bad row. A `domain`
column (a product category, say) is kept for per-domain reports; an IMDB review's movie is
kept as its `group`, so validation can hold whole movies out.

Rows that can't be used are counted with their line numbers in a `ReadReport`; with
`strict=True` the first one raises `DataError` naming the file and line instead.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

IMDB_LABELS = ("negative", "positive")
_IMDB_FOLDERS = {"neg": "negative", "pos": "positive"}
_IMDB_MEMBER_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg|unsup)/[^/]+\.txt$")
FORMATS = ("auto", "aclimdb", "csv", "tsv", "jsonl")
# Column names tried in order when none is given.
TEXT_COLUMNS = ("text", "sentence", "content", "review", "body", "comment")
LABEL_COLUMNS = ("label", "sentiment", "polarity", "class", "target")
LABEL_ALIASES = {
    "0": "negative", "neg": "negative", "negative": "negative",
    "neu": "neutral", "neutral": "neutral",
    "1": "positive", "pos": "positive", "positive": "positive",
}
# Rating columns and how each value maps onto a label (see the module docstring).
RATING_LABELS = {
    "stars": {"1": "negative", "2": "negative", "3": "neutral", "4": "positive", "5": "positive"},
    "fine": {"0": "negative", "1": "negative", "2": "neutral", "3": "positive", "4": "positive"},
}
DOMAIN_COLUMN = "domain"


class DataError(ValueError):
    """A data file that can't be read; the message names the file (and line)."""


class UnknownLabel(DataError):
    """A label that maps onto no class: always an error, never a skipped row."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    domain: str = ""  # e.g. the product category, for per-domain reports
    group: str = ""  # examples of one group (an IMDB movie) stay on one side of a split


@dataclass
class ReadReport:
    path: str
    read: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def reject(self, line: int, reason: str, strict: bool) -> None:
        if strict:
            raise DataError(f"{self.path}: line {line}: {reason}")
        self.bad.append((line, reason))

    def summary(self) -> str:
        text = f"{self.path}: {self.read} rows read, {len(self.bad)} bad"
        if self.bad:
            shown = "; ".join(f"line {n}: {why}" for n, why in self.bad[:5])
            more = f" (and {len(self.bad) - 5} more)" if len(self.bad) > 5 else ""
            text += f" — {shown}{more}"
        return text


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")) or path.is_dir():
        return "aclimdb"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise DataError(f"{path}: can't tell the format from the name; pass --format")


def normalise_label(raw: str) -> str | None:
    """The canonical label for `raw` (case and spaces ignored), None when it maps nowhere."""
    return LABEL_ALIASES.get(raw.strip().lower())


def pick_column(found: list[str], given: str | None, candidates: tuple[str, ...], what: str) -> str:
    """`given` if present, else the first candidate present (any case); DataError otherwise."""
    if given is not None:
        if given not in found:
            raise DataError(f"line 1: no {what} column {given!r} in the header {found}")
        return given
    lowered = {name.strip().lower(): name for name in found}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(
        f"line 1: no {what} column among {found}; expected one of {list(candidates)} "
        f"or pass --{what}-column"
    )


def load_examples(
    path: str | Path,
    fmt: str = "auto",
    split: str = "train",
    text_column: str | None = None,
    label_column: str | None = None,
    strict: bool = False,
    urls: str | Path | None = None,
) -> tuple[list[Example], ReadReport]:
    """Read labelled examples from any supported source; log a summary of bad rows. `urls`:
    the aclImdb movie-URL folder, so each review's movie becomes its group."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "aclimdb":
        examples, report = read_aclimdb(path, split, Path(urls) if urls else None)
    elif fmt in ("csv", "tsv"):
        examples, report = read_csv(path, text_column, label_column, strict, fmt == "tsv")
    elif fmt == "jsonl":
        examples, report = read_jsonl(path, text_column, label_column, strict)
    else:
        raise DataError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if report.bad:
        logger.warning(report.summary())
    if not examples:
        raise DataError(f"{path}: no usable examples (split {split!r})")
    return examples, report


def _iter_aclimdb(path: Path, split: str, folders: tuple[str, ...]) -> Iterator[tuple[str, str, int]]:
    """(folder, text, review id) for every review of `split` in the chosen folders, in a stable
    order."""
    if path.is_dir():
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        for folder in folders:
            for file in sorted((root / split / folder).glob("*.txt")):
                yield folder, file.read_text(encoding="utf-8", errors="replace"), _review_id(file.name)
        return
    try:
        with tarfile.open(path) as archive:
            found: list[tuple[str, str]] = []
            for member in archive:
                m = _IMDB_MEMBER_RE.search(member.name)
                if not (m and member.isfile() and m.group(1) == split and m.group(2) in folders):
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    found.append((member.name, handle.read().decode("utf-8", errors="replace")))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from exc
    for name, text in sorted(found):
        parts = name.split("/")
        yield parts[-2], text, _review_id(parts[-1])


def _review_id(file_name: str) -> int:
    """`123_8.txt` -> 123 (-1 when the name has no id)."""
    head = file_name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def read_aclimdb(
    path: Path, split: str = "train", urls: Path | None = None
) -> tuple[list[Example], ReadReport]:
    """aclImdb/{split}/{pos,neg}/<id>_<rating>.txt from a directory or a tar(.gz) archive.
    With `urls` (a folder of urls_pos.txt / urls_neg.txt, line i = review i's movie page), each
    review's movie becomes its group."""
    report = ReadReport(str(path))
    movies = {folder: _movie_urls(urls, folder) for folder in ("neg", "pos")} if urls else {}
    examples = []
    for folder, text, review_id in _iter_aclimdb(path, split, ("neg", "pos")):
        report.read += 1
        group = ""
        if movies:
            if review_id >= len(movies[folder]):
                raise DataError(f"{urls}: no movie for {folder}/{review_id}")
            group = movies[folder][review_id]
        examples.append(Example(text, _IMDB_FOLDERS[folder], group=group))
    return examples, report


def _movie_urls(urls: Path, folder: str) -> list[str]:
    file = urls / f"urls_{folder}.txt"
    if not file.is_file():
        raise DataError(f"{file}: no such file (expected urls_pos.txt and urls_neg.txt)")
    # ".../title/tt0453418/usercomments" -> "tt0453418": one movie, whatever page was linked
    return [line.strip().split("/title/")[-1].split("/")[0] for line in file.read_text().splitlines()]


def read_aclimdb_unlabelled(path: Path) -> list[str]:
    """The train/unsup reviews (for pre-training word vectors)."""
    return [text for _, text, _ in _iter_aclimdb(path, "train", ("unsup",))]


def _row_example(
    row: dict[str, object], text_column: str, label_column: str | None
) -> Example | str:
    """An Example, or the reason the row can't be one; raises DataError for an unknown label."""
    text = row.get(text_column)
    if not isinstance(text, str) or not text.strip():
        return f"missing or empty {text_column!r}"
    rated = _rating_label(row)
    label = row.get(label_column) if label_column else None
    if label is None or isinstance(label, bool) or str(label).strip() == "":
        if rated is None:
            return f"missing {label_column or 'label'!r}"
        canonical = rated
    elif not isinstance(label, str | int):
        return f"{label_column!r} must be a string or an integer"
    else:
        mapped = normalise_label(str(label))
        if mapped is None:
            raise UnknownLabel(
                f"label {str(label)!r} maps to no class: use one of {sorted(set(LABEL_ALIASES))}"
            )
        canonical = mapped
        if rated is not None and rated != canonical:
            return f"label {canonical!r} contradicts the rating ({rated!r})"
    domain = row.get(DOMAIN_COLUMN)
    return Example(text, canonical, domain=domain.strip() if isinstance(domain, str) else "")


def _rating_label(row: dict[str, object]) -> str | None:
    """The label a row's rating maps to (RATING_LABELS), None when it has none."""
    for column, mapping in RATING_LABELS.items():
        value = row.get(column)
        if value is not None and str(value).strip() != "":
            return mapping.get(str(value).strip().split(".")[0])
    return None


def _label_column(found: list[str], given: str | None) -> str | None:
    """The label column; None when there is none but a rating column decides the label."""
    if given is None and any(c in found for c in RATING_LABELS) and not any(
        name.strip().lower() in LABEL_COLUMNS for name in found
    ):
        return None
    return pick_column(found, given, LABEL_COLUMNS, "label")


def read_csv(
    path: Path,
    text_column: str | None = None,
    label_column: str | None = None,
    strict: bool = False,
    tabs: bool = False,
) -> tuple[list[Example], ReadReport]:
    """CSV, or with `tabs` TSV (no quoting, as GLUE writes it); the first line is the header."""
    report = ReadReport(str(path))
    examples = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = (csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if tabs
                  else csv.DictReader(handle))
        try:
            found = list(reader.fieldnames or [])
            text_col = pick_column(found, text_column, TEXT_COLUMNS, "text")
            label_col = _label_column(found, label_column)
            for row in reader:
                report.read += 1
                result = _row_example(row, text_col, label_col)
                if isinstance(result, str):
                    report.reject(reader.line_num, result, strict)
                else:
                    examples.append(result)
        except (csv.Error, UnicodeDecodeError, DataError) as exc:
            raise DataError(f"{path}: line {max(reader.line_num, 1)}: {_strip_line(exc)}") from exc
    return examples, report


def _strip_line(exc: Exception) -> str:
    return str(exc).removeprefix("line 1: ")


def read_jsonl(
    path: Path, text_column: str | None = None, label_column: str | None = None, strict: bool = False
) -> tuple[list[Example], ReadReport]:
    report = ReadReport(str(path))
    examples = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            report.read += 1
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                report.reject(line_no, f"invalid JSON ({exc})", strict)
                continue
            if not isinstance(row, dict):
                report.reject(line_no, "not a JSON object", strict)
                continue
            try:
                text_col = pick_column(list(row), text_column, TEXT_COLUMNS, "text")
                label_col = _label_column(list(row), label_column)
                result = _row_example(row, text_col, label_col)
            except UnknownLabel as exc:
                raise DataError(f"{path}: line {line_no}: {exc}") from exc
            except DataError as exc:  # a missing column makes this row unusable, not the file
                result = _strip_line(exc).replace(" in the header", "")
            if isinstance(result, str):
                report.reject(line_no, result, strict)
            else:
                examples.append(result)
    return examples, report


def read_texts(path: Path, fmt: str = "auto", text_column: str = "text") -> list[str]:
    """Unlabelled texts to score: plain text (one review per line), CSV or JSONL."""
    name = path.name.lower()
    if fmt == "auto":
        fmt = "csv" if name.endswith(".csv") else "jsonl" if name.endswith((".jsonl", ".ndjson")) else "txt"
    if fmt == "txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line for line in lines if line.strip()]
    texts: list[str] = []
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if text_column not in (reader.fieldnames or []):
                raise DataError(f"{path}: line 1: no column {text_column!r} in the header")
            for row in reader:
                texts.append(row.get(text_column) or "")
        return texts
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: line {line_no}: invalid JSON ({exc})") from exc
            if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                raise DataError(f"{path}: line {line_no}: no string field {text_column!r}")
            texts.append(row[text_column])
    return texts
