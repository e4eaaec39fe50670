"""Log formatting and the one access-log line per request."""

from __future__ import annotations

import io
import json
import logging
import queue
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from service.logs import BatchWriter, JsonFormatter, TextFormatter, configure_logging
from tests.service.conftest import running


def record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "service.x", logging.INFO, __file__, 1, "hello %s", ("world",), exc_info
    )
    rec.request_id = "abc"
    rec.status = 200
    return rec


def test_json_lines_carry_the_extra_fields() -> None:
    line = JsonFormatter().format(record())
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["level"] == "INFO"
    assert entry["request_id"] == "abc" and entry["status"] == 200
    assert entry["logger"] == "service.x" and entry["ts"].endswith("+00:00")
    assert "\n" not in line


def test_json_lines_carry_the_traceback() -> None:
    entry = json.loads(JsonFormatter().format(record(exc=True)))
    assert "ValueError: boom" in entry["exc_info"]


def test_text_lines_put_fields_after_the_message() -> None:
    line = TextFormatter().format(record(exc=True))
    first, _, rest = line.partition("\n")
    assert first.endswith("hello world request_id=abc status=200")
    assert "ValueError: boom" in rest


def test_configure_logging_writes_through_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        listener = configure_logging("INFO", "json")
        logging.getLogger("service.test").info("queued", extra={"request_id": "r"})
        logging.getLogger("service.test").debug("filtered out")
        listener.stop()  # flushes
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["message"], e["request_id"]) for e in lines] == [("queued", "r")]


@pytest.mark.anyio
async def test_one_access_line_per_request(
    app_factory: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    async with running(app_factory()) as client:
        with caplog.at_level(logging.INFO, logger="service.access"):
            await client.post(
                "/predict", json={"texts": ["a", "b"]}, headers={"X-Request-ID": "q-1"}
            )
            await client.get("/nowhere", headers={"X-Request-ID": "q-2"})
    lines = [r for r in caplog.records if r.name == "service.access"]
    assert len(lines) == 2
    predict, missing = lines
    assert (predict.method, predict.path, predict.status) == ("POST", "/predict", 200)  # type: ignore[attr-defined]
    assert predict.request_id == "q-1" and predict.batch_size >= 2  # type: ignore[attr-defined]
    assert predict.duration_ms > 0  # type: ignore[attr-defined]
    assert (missing.status, missing.request_id, missing.batch_size) == (404, "q-2", None)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("/nope\n2026-01-01 CRITICAL forged", "/nope\\n2026-01-01 CRITICAL forged"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),
        ("back\\nslash", "back\\\\nslash"),  # a literal backslash-n is not a line break
        ("café 日本 😀", "café 日本 😀"),
    ],
)
def test_text_lines_escape_what_could_forge_a_line(raw: str, shown: str) -> None:
    rec = logging.LogRecord("service.access", logging.INFO, __file__, 1, "GET %s 404", (raw,), None)
    rec.path = raw
    line = TextFormatter().format(rec)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert f"GET {shown} 404" in line and line.endswith(f"path={shown}")


def test_text_traceback_keeps_its_own_lines() -> None:
    rec = record(exc=True)
    rec.msg = "failed:\n%s"
    lines = TextFormatter().format(rec).splitlines()
    assert "failed:\\nworld" in lines[0] and "request_id=abc" in lines[0]
    assert lines[1].startswith("Traceback") and lines[-1] == "ValueError: boom"


def test_the_writer_sends_what_is_queued_in_one_write() -> None:
    class CountingStream(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            CountingStream.writes += 1
            return super().write(text)

    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for i in range(5):  # queued before the writer starts: one batch
        line = record()
        line.msg, line.args = f"line {i}", ()
        records.put(line)
    writer = BatchWriter(records, handler, pause_s=0.01)
    writer.start()
    writer.stop()
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        f"line {i}" for i in range(5)
    ]
    assert CountingStream.writes == 1
