"""The Dockerfile and its scripts: static checks always, the full image test when asked.

The full test (deploy/docker-test.sh: build, run, /predict against local scoring, SIGTERM)
needs root and several minutes, so it runs only with DOCKER_TEST=1:

    DOCKER_TEST=1 python -m pytest -m docker tests/deploy
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SCRIPTS = [
    ROOT / "deploy" / "docker-test.sh",
    ROOT / "deploy" / "base-image.sh",
    ROOT / "deploy" / "slim-venv.sh",
]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_base_image_is_an_arg_and_the_build_is_multi_stage() -> None:
    instructions = _instructions()
    assert instructions[0][0] == "ARG" and instructions[0][1].startswith("BASE_IMAGE=")
    froms = [args for k, args in instructions if k == "FROM"]
    assert len(froms) >= 2
    stages = {args.split()[-1] for args in froms if " AS " in args.upper()}
    # Every stage starts from BASE_IMAGE or from an earlier stage; the runtime from BASE_IMAGE.
    assert all(args.split()[0] in stages | {"${BASE_IMAGE}"} for args in froms)
    assert froms[0].split()[0] == froms[-1].split()[0] == "${BASE_IMAGE}"
    assert "python:3.11-slim" in instructions[0][1]


def test_runtime_stage() -> None:
    final = _final_stage()
    keywords = dict(reversed(final))  # first occurrence of each
    cmd = [args for k, args in final if k == "CMD"][-1]
    assert json.loads(cmd) == ["python", "-m", "service"], "exec form, so SIGTERM reaches python"
    user = [args for k, args in final if k == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    assert "8000" in keywords["EXPOSE"].split()
    healthcheck = keywords["HEALTHCHECK"]
    assert "/health" in healthcheck and "curl" not in healthcheck
    env = " ".join(args for k, args in final if k == "ENV")
    assert "MODEL_DIR=/app/artifacts/review-sentiment" in env
    assert "HOST=0.0.0.0" in env
    # The checkpoint comes from artifacts/ (via the builder stage, for its file modes).
    copies = " ".join(args for k, args in _instructions() if k == "COPY")
    assert "artifacts/review-sentiment/" in copies
    # Nothing for training or development in the runtime install.
    text = DOCKERFILE.read_text()
    assert "[train" not in text and "[dev" not in text and "-e ." not in text


def test_the_venv_is_slimmed_in_a_build_stage_and_only_the_venv_ships() -> None:
    instructions = _instructions()
    builder = instructions[: max(i for i, (k, _) in enumerate(instructions) if k == "FROM")]
    assert ("ARG", "SLIM=1") in builder
    assert any(k == "RUN" and "slim-venv.sh /opt/venv" in args for k, args in builder)
    # strip (binutils) and apt stay in the build stages; the runtime copies files, not tools.
    final = _final_stage()
    assert not any("apt-get" in args or "binutils" in args for k, args in final if k == "RUN")
    assert all(args.startswith("--from=builder") for k, args in final if k == "COPY")


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: everything excluded unless re-included"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "model", "service", "artifacts/review-sentiment"} <= included
    assert "deploy/slim-venv.sh" in included
    assert not included & {".venv", ".git", "tests", "bench"}
    # The staging dir the test script fills is in the context, but never in git.
    assert "deploy/build-extras" in included
    gitignore = (ROOT / "deploy" / "build-extras" / ".gitignore").read_text().split()
    assert "*" in gitignore and "!.gitignore" in gitignore


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)


@pytest.mark.docker
@pytest.mark.skipif(os.environ.get("DOCKER_TEST") != "1", reason="set DOCKER_TEST=1 (root, minutes)")
@pytest.mark.timeout(1800)
def test_image_end_to_end() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "docker-test.sh")],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},  # local scoring with this interpreter
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "PASS" in result.stderr
