"""Logging set-up: one line per record, JSON (for log shippers) or text (for people).

Fields passed with `extra=` become top-level JSON keys / trailing key=value pairs.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# Line breaks, ANSI escapes and every other control or separator character: a client-chosen
# string (a decoded path, say) must not start a forged line or repaint a terminal.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else char.encode("unicode_escape").decode("ascii")


def escape(value: object) -> str:
    """`value` as one printable line: control characters become Python-style escapes (and a
    backslash is doubled, so an escape in the log always came from here)."""
    return _UNSAFE.sub(_escape_char, str(value))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The traceback is added after this, with its own (trusted) line breaks.
        return super().formatMessage(_with_message(record, escape(record.message)))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            pairs = " ".join(f"{k}={escape(v)}" for k, v in extras.items())
            # The traceback (if any) stays last, after the fields.
            head, sep, tail = line.partition("\n")
            line = f"{head} {pairs}{sep}{tail}"
        return line


def _with_message(record: logging.LogRecord, message: str) -> logging.LogRecord:
    copy = logging.makeLogRecord(record.__dict__)
    copy.message = message
    return copy


class _PassThroughQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting and the write happen
    there, so a slow log sink never stalls the event loop. (The stock handler formats here.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class BatchWriter:
    """The consumer side of the log queue, on its own thread: it takes whatever records are
    queued, writes them in one system call, then pauses `pause_s`. Records arriving during the
    pause wake nobody, so a busy server pays no thread wake-up (and GIL hand-over) per access
    line, the largest cost of logging it had (docs/benchmarks.md); an idle one
    blocks and costs nothing. A short pause keeps each burst of formatting short, which the
    tail latency notices. `stop()` writes what is left."""

    def __init__(
        self,
        records: queue.SimpleQueue[Any],
        handler: logging.StreamHandler[Any],
        pause_s: float = 0.01,
    ) -> None:
        self.records = records
        self.handler = handler
        self.pause_s = pause_s
        self._stop = object()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.records.put(self._stop)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self.records.get()]
            while not self.records.empty():
                batch.append(self.records.get_nowait())
            stopping = self._stop in batch
            self._write([record for record in batch if record is not self._stop])
            if stopping:
                return
            time.sleep(self.pause_s)

    def _write(self, records: list[logging.LogRecord]) -> None:
        """Every line in one write: one system call per batch, not per line."""
        handler = self.handler
        lines = []
        for record in records:
            try:
                lines.append(handler.format(record) + handler.terminator)
            except Exception:
                handler.handleError(record)
        if not lines:
            return
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write("".join(lines))
                handler.flush()
            except Exception:
                handler.handleError(records[-1])


def configure_logging(level: str = "INFO", fmt: str = "json") -> BatchWriter:
    """Route every logger (ours, uvicorn's) through one stderr handler on a background thread.
    Stop the returned writer at exit to flush what is queued."""
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    writer = BatchWriter(records, _stderr(fmt))
    writer.start()
    _route_all(_PassThroughQueueHandler(records), level)
    return writer


def configure_plain_logging(level: str = "INFO", fmt: str = "json") -> None:
    """The same lines, written on the logging thread itself: for a process that forks, where
    a background thread could hold a lock at the moment of the fork."""
    _route_all(_stderr(fmt), level)


def _stderr(fmt: str) -> logging.StreamHandler[Any]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def _route_all(handler: logging.Handler, level: str) -> None:
    # Facts no line of ours prints, which every record would otherwise gather (the logging
    # HOWTO's "Optimization" section): the caller's frame, thread and process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
