"""The README's error table against the code: every (status, type) the service can answer is
listed, and nothing listed is made up. The code's pairs are read from every .py file under
service/ (any depth): each `ApiError`, `raw_error`, `error_body` or `error_response` call with a
literal status, and its `type=` (a literal, or a module-level string constant of service/ or
model/; else the status's default type in the service's errors module)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from service.errors import _TYPES_BY_STATUS

REPO = Path(__file__).resolve().parents[2]
ERROR_CALLS = {"ApiError", "raw_error", "error_body", "error_response"}
# Raised by Starlette itself (an unknown path, a wrong method) and shaped by
# service/errors.py's handler with the status's default type.
FROM_STARLETTE = {(404, _TYPES_BY_STATUS[404]), (405, _TYPES_BY_STATUS[405])}


def string_constants(trees: list[ast.Module]) -> dict[str, str]:
    """Module-level `NAME = "text"` assignments: an error type may be passed by name."""
    found = {}
    for tree in trees:
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
                continue
            value = node.value.value
            for target in node.targets:
                if isinstance(value, str) and isinstance(target, ast.Name):
                    found[target.id] = value
    return found


def code_pairs() -> set[tuple[int, str]]:
    pairs = set(FROM_STARLETTE)
    trees = [ast.parse(path.read_text()) for path in sorted((REPO / "service").rglob("*.py"))]
    trees += [ast.parse(path.read_text()) for path in sorted((REPO / "model").rglob("*.py"))]
    names = string_constants(trees)
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name not in ERROR_CALLS or not node.args:
                continue
            status = node.args[0]
            if not (isinstance(status, ast.Constant) and isinstance(status.value, int)):
                continue  # a helper passing a status through (found at its callers)
            kind = next((k.value for k in node.keywords if k.arg == "type"), None)
            if kind is None:
                pairs.add((status.value, _TYPES_BY_STATUS[status.value]))
            elif isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                pairs.add((status.value, kind.value))
            elif isinstance(kind, ast.Name) and kind.id in names:
                pairs.add((status.value, names[kind.id]))
    return pairs


def readme_error_table() -> str:
    """The README's "Errors" section (a heading of level 2 or 3), up to the next heading."""
    text = (REPO / "README.md").read_text()
    section = re.search(r"^#{2,3} Errors\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert section is not None, "the README has no Errors heading"
    return section.group(1)


def readme_pairs() -> set[tuple[int, str]]:
    table = readme_error_table()
    pairs: set[tuple[int, str]] = set()
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"\d{3}( / \d{3})*", cells[0]):
            continue
        statuses = [int(s) for s in cells[0].split(" / ")]
        types = re.findall(r"`([a-z_]+)`", cells[1])
        if len(statuses) == len(types):
            pairs.update(zip(statuses, types, strict=True))
        else:
            assert len(statuses) == 1, row  # one status, several types
            pairs.update((statuses[0], kind) for kind in types)
    return pairs


def test_readme_pairs_are_found() -> None:
    # The table reader works: an empty or mis-read table would make the comparison below vacuous
    # on one side.
    assert {(400, "invalid_json"), (404, "not_found"), (503, "too_many_connections")} <= readme_pairs()


def test_code_pairs_are_found() -> None:
    # The scan itself works: a few pairs known to exist, from each kind of call.
    assert {(400, "invalid_json"), (431, "headers_too_large"), (500, "internal_error")} <= code_pairs()


def test_readme_error_table_matches_the_code() -> None:
    code, readme = code_pairs(), readme_pairs()
    assert not code - readme, f"answered but not in the README's table: {sorted(code - readme)}"
    assert not readme - code, f"in the README's table but never answered: {sorted(readme - code)}"
