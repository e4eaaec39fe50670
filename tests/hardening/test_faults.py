"""Faults at process level, added only where tests/service does not already cover them:

* SIGTERM under load is covered by tests/service/test_e2e.py::
  test_sigterm_under_load_loses_no_accepted_request (both DRAIN_DELAY_S=0 and 0.5: every
  accepted request answered 200 with the offline scores, exit code 0): not repeated here.
* A model-call exception: tests/service/test_errors.py covers it in-process (ASGI transport);
  here the REAL server (this module run as `python -m tests.hardening.test_faults`, which patches
  the model call to fail a given number of times) answers 500 with the request id, then 200s,
  while /health stays 200.
* Bad checkpoints: test_e2e covers an unparsable manifest; here missing, truncated, corrupted
  and sha-mismatched files each end `python -m service` with exit code 3 and one line on stderr,
  before anything listens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.test_hostile import log_once_written
from tests.service.conftest import assert_error
from tests.service.test_e2e import run_main, server

pytestmark = pytest.mark.slow

FAIL_FILE_ENV = "FAIL_MODEL_CALLS_FILE"  # holds N: the next N model calls raise


# -- model-call exception on the real server ---------------------------------------------------


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    work = tmp_path_factory.mktemp("faults")
    flag = work / "fail-calls"
    env = {FAIL_FILE_ENV: str(flag), "MAX_WAIT_MS": "0"}
    with server(tiny_checkpoint_dir, work / "server.log", "tests.hardening.test_faults", **env) as (
        process,
        url,
    ):
        yield process, url, flag, work / "server.log"


def test_failing_model_call_is_500_with_request_id_then_serving_resumes(faulty: Any) -> None:
    process, url, flag, log = faulty
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/predict", json={"text": "fine before"}).status_code == 200
        flag.write_text("1")
        failed = client.post("/predict", json={"text": "a good film"}, headers={"X-Request-ID": "fault-1"})
        error = assert_error(failed, 500, "internal_error")
        assert "fault-1" in error["message"]
        assert "deliberately" not in error["message"]  # the exception text is not leaked
        assert not flag.exists() or flag.read_text() == "0"
        assert client.get("/health").status_code == 200
        for i in range(5):
            response = client.post("/predict", json={"text": f"a good film {i}"})
            assert response.status_code == 200, response.text
    assert process.poll() is None
    assert "fault-1" in log_once_written(log, "fault-1")  # the traceback, under the request id


def test_failing_batch_of_several_fails_those_requests_only(faulty: Any) -> None:
    _, url, flag, _ = faulty
    with httpx.Client(base_url=url, timeout=10) as client:
        # A two-review request: the batch fails, each half is retried alone and fails too.
        flag.write_text("3")
        failed = client.post("/predict", json={"texts": ["good", "bad"]}, headers={"X-Request-ID": "fault-2"})
        assert_error(failed, 500, "internal_error")
        after = client.post("/predict", json={"texts": ["good", "bad"]})
        assert after.status_code == 200 and len(after.json()["predictions"]) == 2
        # Fail only the first call of a two-review batch: the halves succeed on the retry.
        flag.write_text("1")
        retried = client.post("/predict", json={"texts": ["good", "bad"]})
        assert retried.status_code == 200, retried.text
        assert client.get("/health").status_code == 200


# -- bad checkpoints ---------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refresh_manifest(directory: Path) -> None:
    """Make the manifest agree with the (modified) files, so that later checks are reached."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for name in manifest["files"]:
        if (directory / name).is_file():
            manifest["files"][name] = _sha(directory / name)
    manifest_path.write_text(json.dumps(manifest))


def _truncate(directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _flip_byte(directory: Path) -> None:
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) - 10] ^= 0xFF
    weights.write_bytes(bytes(data))


def _wrong_sha(directory: Path) -> None:
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["config.json"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))


def _empty(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()


Mutation = Callable[[Path], None]
CASES: dict[str, tuple[Mutation, str]] = {
    "missing-directory": (lambda d: shutil.rmtree(d), "missing"),
    "empty-directory": (_empty, "manifest.json"),
    "missing-weights": (lambda d: (d / "model.safetensors").unlink(), "model.safetensors"),
    "missing-vocab": (lambda d: (d / "vocab.json").unlink(), "vocab.json"),
    "truncated-weights": (_truncate, "model.safetensors"),
    "flipped-byte": (_flip_byte, "model.safetensors"),
    "sha-mismatch": (_wrong_sha, "config.json"),
    "truncated-weights-manifest-updated": (
        lambda d: (_truncate(d), _refresh_manifest(d)),
        "model.safetensors",
    ),
    "garbage-weights-manifest-updated": (
        lambda d: ((d / "model.safetensors").write_bytes(os.urandom(4096)), _refresh_manifest(d)),
        "model.safetensors",
    ),
    "bad-config-json-manifest-updated": (
        lambda d: ((d / "config.json").write_text("{oops"), _refresh_manifest(d)),
        "config.json",
    ),
    "bad-vocab-manifest-updated": (
        lambda d: ((d / "vocab.json").write_text('{"not": "a list"}'), _refresh_manifest(d)),
        "vocab.json",
    ),
}


# Every case with text logs; the default json format on two (each start costs seconds).
PARAMS = [(case, "text") for case in sorted(CASES)] + [
    ("flipped-byte", "json"),
    ("missing-directory", "json"),
]


@pytest.mark.parametrize(("case", "log_format"), PARAMS)
def test_bad_checkpoint_exits_with_one_line_before_listening(
    case: str, log_format: str, tmp_path: Path, tiny_checkpoint_dir: Path
) -> None:
    mutate, named = CASES[case]
    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint_dir, directory)
    mutate(directory)
    started = time.monotonic()
    result = run_main(tmp_path, MODEL_DIR=str(directory), LOG_FORMAT=log_format)
    assert result.returncode == 3, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "checkpoint" in lines[0], lines[0]
    assert "Uvicorn running" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


# -- `python -m tests.hardening.test_faults`: the real server, its model call made to fail ------


def _install_failing_model_call() -> None:
    from service.runtime.sentiment_model import SentimentModel

    flag = Path(os.environ[FAIL_FILE_ENV])
    original = SentimentModel.predict

    def predict(self: SentimentModel, batch: list[list[int]]) -> list[list[float]]:
        # One model thread calls this, so read-modify-write of the counter is safe.
        try:
            remaining = int(flag.read_text() or "0")
        except (FileNotFoundError, ValueError):
            remaining = 0
        if remaining > 0:
            flag.write_text(str(remaining - 1))
            raise RuntimeError("model call deliberately failed by a test")
        return original(self, batch)

    SentimentModel.predict = predict  # type: ignore[method-assign]


if __name__ == "__main__":
    from service.server import launch as entry

    _install_failing_model_call()
    sys.exit(entry.main())
