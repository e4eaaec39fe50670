"""The Docker image size, from the docker test's results when there are any.

Sources, first found wins: --image-size-mb; deploy/results/docker-test.json (any key holding
"size" and "bytes"/"mb"); the log line "image TAG: N MB" in deploy/results/docker-test.log;
`docker image inspect` of $BENCH_IMAGE (default sentiment-rnn:docker-test, then sentiment-rnn).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.server import REPO

RESULT_JSON = REPO / "deploy" / "results" / "docker-test.json"
RESULT_LOG = REPO / "deploy" / "results" / "docker-test.log"
_LOG_RE = re.compile(r"image \S+: (\d+(?:\.\d+)?) MB")


def _from_json(path: Path) -> float | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                k = str(key).lower()
                if "size" in k and isinstance(value, int | float) and "base" not in k:
                    return float(value) / 1e6 if "byte" in k or value > 1e5 else float(value)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _from_log(path: Path) -> float | None:
    try:
        found = _LOG_RE.findall(path.read_text(errors="replace"))
    except OSError:
        return None
    return float(found[-1]) if found else None


def _from_docker() -> tuple[float, str] | None:
    if shutil.which("docker") is None:
        return None
    tags = (
        [os.environ["BENCH_IMAGE"]]
        if os.environ.get("BENCH_IMAGE")
        else ["sentiment-rnn:docker-test", "sentiment-rnn"]
    )
    for tag in tags:
        res = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True, timeout=30
        )
        if res.returncode == 0 and res.stdout.strip().isdigit():
            return int(res.stdout.strip()) / 1e6, f"docker image inspect {tag}"
    return None


def image_size(given_mb: float | None) -> dict[str, Any]:
    if given_mb is not None:
        return {"size_mb": given_mb, "source": "--image-size-mb"}
    for path, reader in ((RESULT_JSON, _from_json), (RESULT_LOG, _from_log)):
        if path.exists() and (mb := reader(path)) is not None:
            return {"size_mb": round(mb, 1), "source": str(path.relative_to(REPO))}
    try:
        found = _from_docker()
    except (OSError, subprocess.TimeoutExpired):
        found = None
    if found:
        return {"size_mb": round(found[0], 1), "source": found[1]}
    return {"size_mb": None, "source": "not measured: run `make docker-test` (see bench/image.py)"}
