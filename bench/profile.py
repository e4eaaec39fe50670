"""Sampling profile of the loaded server with py-spy (`pip install py-spy`; needs ptrace).

`py-spy record --format raw` writes collapsed stacks ("frame;frame;... count"); each sample is
put in one bucket (HTTP, validation, JSON, tokenization, model, ...) and the top functions are
counted by self and total samples.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

logger = logging.getLogger(__name__)

# Buckets, checked from the innermost frame outwards: the first frame that matches decides.
# A stack that passes through logging or the metrics client is charged to them first.
# py-spy names frames "function (path/to/file.py:line)", the path relative to sys.path.
_IN = r"\((?:.*/)?"  # start of a frame's file path, any directory before it
OVERRIDES = [
    ("logging", re.compile(_IN + r"logging/|pythonjsonlogger|structlog|service/logs\.py")),
    ("metrics", re.compile(r"prometheus_client|service/runtime/metrics\.py")),
]
WAITING = "waiting (lock, condition, GIL)"
BUCKETS = [
    (WAITING, re.compile(r"^(\w+\.)?(wait|_wait_for_tstate_lock|acquire) " + _IN + r"threading\.py")),
    ("explain", re.compile(r"model/explain\.py")),
    ("tokenization", re.compile(r"model/text\.py")),
    (
        "model (ONNX Runtime or torch)",
        re.compile(_IN + r"torch/|onnxruntime/|model/(rnn|predictor|onnx_graph)\.py"),
    ),
    ("JSON", re.compile(r"json|dumps|loads|serialize_response|render \(", re.IGNORECASE)),
    ("validation", re.compile(r"pydantic|validat")),
    ("batcher (queue, hand-off)", re.compile(r"service/runtime/batching\.py")),
    (
        "HTTP / framework",
        re.compile(
            r"uvicorn|starlette|fastapi|h11|httptools|anyio|read_body|service/app/middleware\.py|"
            + _IN
            + r"email/"
        ),
    ),
    (
        "event loop, sockets, HTTP parsing (native uvloop/httptools)",
        re.compile(_IN + r"(asyncio/|selectors\.py|threading\.py|concurrent/)|uvloop"),
    ),
]
_FRAME_RE = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else None


def check_py_spy(pid: int) -> str | None:
    """None if `py-spy dump` can read `pid`, else why not (not installed, no ptrace...)."""
    exe = py_spy()
    if exe is None:
        return "py-spy not installed (pip install py-spy)"
    try:
        res = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy dump failed: {exc}"
    return None if res.returncode == 0 else f"py-spy dump failed: {res.stderr.strip()[:300]}"


def start_record(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    exe = py_spy()
    assert exe is not None
    cmd = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--subprocesses",  # the workers, not only the supervisor
        "--output",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    m = _FRAME_RE.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def classify(frames: list[str]) -> str:
    for name, pattern in OVERRIDES:
        if any(pattern.search(f) for f in frames):
            return name
    if BUCKETS[0][1].search(frames[-1].strip()):
        return WAITING
    for frame in reversed(frames):
        for name, pattern in BUCKETS[1:]:
            if pattern.search(frame):
                return name
    return "other (service code, interpreter)"


def summarise(raw: Path, top_n: int = 15) -> dict[str, object]:
    buckets: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        buckets[classify(frames)] += count
        self_time[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            total_time[name] += count
    share = {k: round(v / samples, 4) for k, v in buckets.most_common()} if samples else {}
    busy = samples - buckets[WAITING]
    busy_share = {k: round(v / busy, 4) for k, v in buckets.most_common() if k != WAITING} if busy else {}
    return {
        "samples": samples,
        "bucket_share": share,
        "busy_share": busy_share,  # shares of the samples that were not waiting: CPU apportioning
        "top_self": [
            {"function": f, "share": round(n / samples, 4)} for f, n in self_time.most_common(top_n)
        ],
        "top_total": [
            {"function": f, "share": round(n / samples, 4)} for f, n in total_time.most_common(top_n)
        ],
    }
