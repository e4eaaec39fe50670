"""The README and docs/ against the code they describe: the configuration table is exactly
`Settings`, every shell command in a fenced block names a make target and a module that exist,
the `curl` examples show what the service answers now, and every relative link resolves.
(The error table is checked by tests/hardening/test_error_table.py.)"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import Settings

# create_app through the service tests' fixtures module, which imports it from wherever the
# service package keeps it; `running` starts the app's lifespan and gives an in-process client.
from tests.service.conftest import create_app, running

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MARKDOWN = [README, *DOCS, REPO / "bench" / "README.md", REPO / "bench" / "results" / "HISTORY.md"]
README_MAX_LINES = 250  # a front page for tomorrow's engineer; details go to docs/

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
# Commands that cannot run in a test, and why; any other program must be make or python -m.
NOT_RUN = {
    "curl": "needs a running server (the examples' outputs are checked in-process below)",
    "docker": "needs a Docker engine (make docker-test runs the image)",
    "kubectl": "needs a Kubernetes cluster (tests/deploy validates the manifests)",
    "pip": "installs from the network",
}
# Modules whose --help is not a help text.
NO_HELP = {"service": "takes no arguments: it starts serving"}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# -- reading Markdown ---------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The body under the heading `title`, up to the next heading of the same or a higher level
    (a `#` line inside a fenced block is not a heading)."""
    lines = text.splitlines()
    start = level = None
    in_fence = False
    body: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"(#{1,6}) (.*)", line)
        if start is None:
            if heading and heading.group(2).strip() == title:
                start, level = i, len(heading.group(1))
            continue
        if heading and level is not None and len(heading.group(1)) <= level:
            break
        body.append(line)
    assert start is not None, f"no heading {title!r}"
    return "\n".join(body)


def table_rows(text: str) -> Iterator[list[str]]:
    for line in text.splitlines():
        if line.startswith("|"):
            yield [cell.strip() for cell in line.strip().strip("|").split("|")]


@dataclass(frozen=True)
class Command:
    source: str  # file:line, for messages
    words: list[str]  # after the leading VAR=value assignments
    output: str  # the lines a console block shows after it ("" in an sh block)


def shell_commands(path: Path) -> list[Command]:
    """Every command in the file's fenced shell blocks: in a `console` block the `$ ` lines
    (each followed by its output), in an `sh` block every line; `\\` continues a line."""
    text = path.read_text()
    commands = []
    for block in FENCE.finditer(text):
        if block.group(1) not in SHELL_BLOCKS:
            continue
        first_line = text.count("\n", 0, block.start(2)) + 1
        console = block.group(1) == "console"
        lines = block.group(2).splitlines()
        i = 0
        while i < len(lines):
            number, line = first_line + i, lines[i]
            i += 1
            if console and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ")
            while line.endswith("\\") and i < len(lines):
                line, i = line[:-1] + " " + lines[i].strip(), i + 1
            output = []
            while console and i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words = words[1:]
            if words:
                commands.append(Command(f"{rel(path)}:{number}", words, "\n".join(output)))
    return commands


def make_targets() -> set[str]:
    """Targets with a rule of their own in the Makefile (a name only in .PHONY has none)."""
    text = (REPO / "Makefile").read_text()
    targets: set[str] = set()
    for match in re.finditer(r"^([A-Za-z0-9_.-]+(?: [A-Za-z0-9_.-]+)*)\s*:(?!=)", text, re.M):
        targets.update(t for t in match.group(1).split() if not t.startswith("."))
    return targets


def python_module(words: list[str]) -> str | None:
    """The module of `python -m MODULE ...` (any python: .venv/bin/python, python3.11), else None."""
    if re.fullmatch(r"(\S*/)?python(3(\.\d+)?)?", words[0]) and words[1:2] == ["-m"]:
        return words[2]
    return None


README_COMMANDS = shell_commands(README)
DOC_COMMANDS = [c for path in DOCS for c in shell_commands(path)]


# -- the README stays a front page --------------------------------------------------------------


def test_the_readme_is_short_and_names_every_doc() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    unnamed = [rel(p) for p in DOCS if rel(p) not in text]
    assert not unnamed, f"docs the README does not point to: {unnamed}"


# -- configuration ------------------------------------------------------------------------------


def config_table() -> dict[str, str]:
    """variable -> its default cell, from the README's configuration table."""
    rows = {}
    for cells in table_rows(section(README.read_text(), "Configuration")):
        name = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        if name:
            assert name.group(1) not in rows, f"{name.group(1)} listed twice"
            rows[name.group(1)] = cells[1]
    return rows


def test_the_configuration_table_lists_exactly_the_settings() -> None:
    table, fields = set(config_table()), {name.upper() for name in Settings.model_fields}
    assert not fields - table, f"settings missing from the README's table: {sorted(fields - table)}"
    assert not table - fields, f"in the README's table but not in Settings: {sorted(table - fields)}"


def test_the_configuration_table_shows_the_defaults() -> None:
    wrong = {}
    for name, cell in config_table().items():
        field = Settings.model_fields[name.lower()]
        if field.default_factory is not None:
            continue  # computed at start (WORKERS: the CPUs available); the cell says how
        default = field.default
        shown = re.match(r"`([^`]*)`", cell)
        if default is None:
            ok = cell.startswith("unset")
        elif shown is None:
            ok = False
        elif isinstance(default, bool):
            ok = shown.group(1) == str(default).lower()
        elif isinstance(default, int | float):
            ok = float(shown.group(1)) == float(default)
        else:
            ok = shown.group(1) == str(default)
        if not ok:
            wrong[name] = (cell, default)
    assert not wrong, f"README default vs Settings default: {wrong}"


def test_the_table_reader_reads_this_readme() -> None:
    # The two tests above compare sets and values; an empty or mis-read table must not pass.
    table = config_table()
    assert table["MAX_BATCH_SIZE"] == "`16`" and table["MODEL_DIR"].startswith("unset")


# -- commands -----------------------------------------------------------------------------------


def test_the_readme_has_commands_to_check() -> None:
    programs = {c.words[0] for c in README_COMMANDS}
    assert {"make", "curl"} <= programs and any(python_module(c.words) for c in README_COMMANDS)


@pytest.mark.parametrize("command", README_COMMANDS + DOC_COMMANDS, ids=lambda c: c.source)
def test_every_shell_command_names_what_exists(command: Command) -> None:
    words = command.words
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
        missing = sorted(set(targets) - make_targets())
        assert targets and not missing, f"{command.source}: no make rule for {missing or words}"
        return
    module = python_module(words)
    if module is not None:
        assert importlib.util.find_spec(module) is not None, f"{command.source}: no module {module}"
        return
    if words[0] in NOT_RUN:
        pytest.skip(f"{words[0]}: {NOT_RUN[words[0]]}")
    pytest.fail(f"{command.source}: {words[0]} is neither make nor python -m; add a check or a reason")


README_MODULES = sorted({m for c in README_COMMANDS if (m := python_module(c.words))} - set(NO_HELP))


@pytest.mark.parametrize("module", README_MODULES)
def test_every_readme_module_answers_help(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()


# -- the curl examples show today's answers -----------------------------------------------------


@dataclass(frozen=True)
class Example:
    source: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    output: str


def curl_examples() -> list[Example]:
    """The `$ curl localhost:8000/...` examples with their output, where the output is the whole
    answer (no pipe to grep: those depend on the traffic so far)."""
    examples = []
    for command in README_COMMANDS + DOC_COMMANDS:
        words = command.words
        if words[0] != "curl" or "|" in words or not command.output:
            continue
        method, headers, body, url = "GET", {}, None, None
        i = 1
        while i < len(words):
            word = words[i]
            if word in ("-H", "-d", "-X"):
                value, i = words[i + 1], i + 1
                if word == "-H":
                    key, _, val = value.partition(":")
                    headers[key.strip()] = val.strip()
                elif word == "-d":
                    body, method = value, "POST" if method == "GET" else method
                else:
                    method = value
            elif word.startswith("localhost:8000"):
                url = word
            i += 1
        assert url is not None, command.source
        examples.append(Example(command.source, method, url.removeprefix("localhost:8000"), headers,
                                body, command.output))
    return examples


def differences(shown: Any, real: Any, where: str = "") -> list[str]:
    """Where `shown` differs from `real`: floats to 1e-6 (the same model on the same backend),
    request ids (new each time) ignored."""
    if isinstance(shown, dict) and isinstance(real, dict):
        if shown.keys() != real.keys():
            return [f"{where}: keys {sorted(shown)} vs {sorted(real)}"]
        return [d for k in shown if k != "request_id" for d in differences(shown[k], real[k], f"{where}.{k}")]
    if isinstance(shown, list) and isinstance(real, list):
        if len(shown) != len(real):
            return [f"{where}: {len(shown)} items vs {len(real)}"]
        return [d for i, (a, b) in enumerate(zip(shown, real, strict=True))
                for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(shown, float) and isinstance(real, float):
        return [] if real == pytest.approx(shown, rel=1e-5, abs=1e-6) else [f"{where}: {shown} vs {real}"]
    return [] if shown == real else [f"{where}: {shown!r} vs {real!r}"]


def test_the_curl_examples_show_what_the_shipped_model_answers() -> None:
    examples = curl_examples()
    assert any(e.source.startswith("README.md") for e in examples), "the README shows no answer"

    async def answers() -> list[httpx.Response]:
        app = create_app(Settings(model_dir=None, log_level="WARNING"))
        async with running(app) as client:
            return [
                await client.request(e.method, e.path, headers=e.headers,
                                     content=None if e.body is None else e.body.encode())
                for e in examples
            ]

    wrong = []
    for example, response in zip(examples, asyncio.run(answers()), strict=True):
        shown = example.output.strip()
        if shown.endswith("…"):  # a long answer cut short: the part shown, as the server writes it
            if not response.text.startswith(shown.removesuffix("…").rstrip()):
                wrong.append(f"{example.source}: not the start of {response.text[:200]}")
            continue
        wrong += [f"{example.source}{d}" for d in differences(json.loads(shown), response.json())]
    assert not wrong, "\n".join(wrong)


# -- links --------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base = name = slug(heading)
        n = 0
        while name in found:  # a repeated heading gets -1, -2, ...
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def relative_links(path: Path) -> Iterator[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))  # not code
    yield from re.findall(r"\]\(([^)\s]+)\)", text)
    yield from re.findall(r'<img [^>]*src="([^"]+)"', text)


def test_the_link_reader_finds_links_and_anchors() -> None:
    assert slug("The page at `/`") == "the-page-at-"
    assert slug("Behavioural tests (`make checklist`)") == "behavioural-tests-make-checklist"
    assert "docs/api.md" in set(relative_links(README)) and "errors" in anchors(README)


@pytest.mark.parametrize("path", MARKDOWN, ids=rel)
def test_relative_links_point_to_files_and_headings_that_exist(path: Path) -> None:
    broken = []
    for link in relative_links(path):
        if re.match(r"[a-z]+:", link):
            continue  # http:, https:, mailto:
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {rel(file)}")
    assert not broken, f"{rel(path)}: " + "; ".join(broken)
