"""uvicorn's httptools protocol with the limits a public socket needs before any ASGI code runs:

* a header deadline, armed when the connection opens (and, on a kept-alive connection, when
  the next request's first byte arrives): headers not complete by then get 408 and the
  connection is closed, so a client that sends half its headers and stops (slowloris), or
  connects and says nothing, frees its socket;
* a header size limit, counted on the raw bytes as they arrive, so an endless header is
  refused (431) after `max_header_bytes`, never buffered whole;
* a connection limit: beyond `max_connections` open connections each request gets 503 with
  `Retry-After` and the connection is closed (uvicorn's own `limit_concurrency` answers in
  plain text) -- except the probes (`GET`/`HEAD` of /health and /health/live), which are
  answered and then the connection closed: a flood of idle connections must not make the
  orchestrator restart (liveness) or unlist (readiness) a healthy server, and one probe answer
  costs less than the 503 would;
* a write deadline: a connection whose answers are not read (the client pipelines requests and
  never reads, so the send buffer stays full) is aborted after `write_timeout_s`, instead of
  holding its socket and send buffer for good;
* a pipelining limit: a connection with more than MAX_PIPELINED requests queued behind the one
  being answered is aborted (each queued request holds memory, and one read may hold
  thousands);
* the answers uvicorn writes itself for malformed HTTP come in the service's one error shape;
* every refusal (400, 408, 431, 503, a silent connection closed, a write deadline) is counted
  through `on_refusal` (the app's metrics) and logged, at most one line per kind every
  `REFUSAL_LOG_INTERVAL_S` with the count of those not logged, so a flood of refusals is not
  also a flood of log lines.

h11 (uvicorn's other parser) has a size limit but no header deadline either, and is slower.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.app.middleware import new_request_id
from service.app.request_body import OPEN_CONNECTIONS
from service.errors import error_body, send_json

logger = logging.getLogger("service.protocol")

# Connection limit answers carry this; a well-behaved client retries after it.
RETRY_AFTER_S = 1
# What an orchestrator probes (deploy/k8s/deployment.yaml): answered beyond the connection cap.
PROBE_PATHS = frozenset({"/health", "/health/live"})
PROBE_METHODS = frozenset({"GET", "HEAD"})
REFUSAL_LOG_INTERVAL_S = 10.0
# Requests queued behind the one being answered on a connection. httptools parses a whole read
# (up to 256 KB) at once, and every pipelined request in it became a queued request object:
# 20 connections sending 256 KB of minimal requests took 132 MB. Browsers do not pipeline;
# a client that queues more than this is cut off.
MAX_PIPELINED = 32

# (status or None for a close without an answer, error type) -> None; the app's metrics.
RefusalObserver = Callable[[int | None, str], None]


class RefusalLog:
    """One warning per kind of refusal per `interval_s` at most, carrying how many of that kind
    were not logged since: under a flood every refusal is counted, few are written."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def refused(self, status: int | None, type: str, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(type)
        if last is not None and now - last < self.interval_s:
            self._unlogged[type] = self._unlogged.get(type, 0) + 1
            return
        self._last[type] = now
        unlogged = self._unlogged.pop(type, 0)
        more = f" ({unlogged} more since the last such line)" if unlogged else ""
        logger.warning(
            "protocol refused: %s%s",
            message,
            more,
            extra={"status": status, "type": type, "unlogged": unlogged},
        )


REFUSALS = RefusalLog()


class _PipelineTooDeep(Exception):
    """Raised from a parser callback to stop httptools parsing the rest of a read."""


class _UvicornRefusalLines(logging.Filter):
    """uvicorn logs a line per malformed request; this module counts and logs them itself, a
    flood of them in a few lines (RefusalLog), so uvicorn's own line is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid HTTP request received."


logging.getLogger("uvicorn.error").addFilter(_UvicornRefusalLines())


def _ignore_refusal(status: int | None, type: str) -> None:
    """The default observer: nothing counts refusals (a protocol built without an app)."""


def raw_error(status: int, message: str, *, type: str | None = None, retry_after: int = 0) -> bytes:
    """A complete HTTP/1.1 error response in the one error shape, closing the connection."""
    request_id = new_request_id()
    body = error_body(status, message, type=type, request_id=request_id)
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-request-id: %s\r\n" % request_id.encode("ascii"),
        b"connection: close\r\n",
    ]
    if retry_after:
        head.append(b"retry-after: %d\r\n" % retry_after)
    return b"".join([*head, b"\r\n", body])


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The app a request gets while the server holds more connections than it may."""
    request_id = new_request_id()
    body = error_body(
        503,
        "Too many open connections; retry later",
        type="too_many_connections",
        request_id=request_id,
    )
    headers = [
        (b"x-request-id", request_id.encode("ascii")),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
        (b"connection", b"close"),
    ]
    await send_json(send, 503, body, headers)


class _HeadersTooLarge:
    """The app a request gets whose request line and headers, complete, exceed the limit: they
    can arrive in one read (up to the event loop's read size) before data_received counts
    them, so the size is checked again once they are parsed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request_id = new_request_id()
        message = f"Request headers exceed {self.limit} bytes"
        body = error_body(431, message, type="headers_too_large", request_id=request_id)
        headers = [(b"x-request-id", request_id.encode("ascii")), (b"connection", b"close")]
        await send_json(send, 431, body, headers)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Configure with `guarded_protocol(...)`, which sets the limits below."""

    header_timeout_s: float = 5.0
    max_header_bytes: int = 65536
    max_connections: int = 1000
    write_timeout_s: float = 10.0
    on_refusal: RefusalObserver = staticmethod(_ignore_refusal)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = True  # from connection start, and after each complete request
        self._header_bytes = 0
        self._write_timer: asyncio.TimerHandle | None = None
        self._too_deep = False

    def _refused(self, status: int | None, type: str, message: str) -> None:
        self.on_refusal(status, type)
        REFUSALS.refused(status, type, message)

    # -- header deadline -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_write_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        if self._header_timer is None:  # a kept-alive connection's next request
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        if len(self.pipeline) >= MAX_PIPELINED:
            self._too_deep = True
            raise _PipelineTooDeep
        self._cancel_header_timer()
        self._reading_headers = False
        self._header_bytes = 0
        # Decided per request, like uvicorn's limit_concurrency, but answered in our shape.
        open_connections = len(self.connections)
        over = open_connections > self.max_connections
        probe = over and self._is_probe()
        header_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if header_bytes > self.max_header_bytes:
            self.app = _HeadersTooLarge(self.max_header_bytes)
            self._refused(431, "headers_too_large", f"{header_bytes} bytes of headers, in one read")
        elif over and not probe:
            self.app = _over_capacity
            self._refused(503, "too_many_connections", f"{open_connections} connections open")
        else:
            self.app = self._app
        self.scope[OPEN_CONNECTIONS] = open_connections  # type: ignore[literal-required]
        super().on_headers_complete()
        if probe and self.cycle is not None:
            # Answered, but the connection is not kept: the cap still bounds what stays open.
            self.cycle.keep_alive = False

    def _is_probe(self) -> bool:
        # The parser has the method and the URL by now; the scope gets them in super().
        method = self.parser.get_method().decode("ascii", "replace")
        path = self.url.partition(b"?")[0]
        return method in PROBE_METHODS and path.decode("ascii", "replace") in PROBE_PATHS

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        # Part of a request came (and no earlier response is being written): say why.
        within = f"within {self.header_timeout_s:g}s"
        if self._header_bytes and not answering:
            self._answer_and_close(408, "request_timeout", f"Request headers not received {within}")
            return
        if not answering:
            self._refused(None, "idle_closed", f"nothing received {within}")
        self.transport.close()

    # -- write deadline ------------------------------------------------------------------

    def pause_writing(self) -> None:
        # The transport's buffer passed its high-water mark: the kernel's send buffer is full,
        # so the client has not been reading. It has `write_timeout_s` to catch up.
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.write_timeout_s, self._write_too_slow)

    def resume_writing(self) -> None:
        self._cancel_write_timer()
        super().resume_writing()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_too_slow(self) -> None:
        self._write_timer = None
        if self.transport.is_closing():
            return
        message = f"answers not read within {self.write_timeout_s:g}s"
        self._refused(None, "write_timeout", message)
        # abort, not close: close would wait to flush what the client is not reading.
        self.transport.abort()

    # -- header size ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._reading_headers:
            super().data_received(data)
            return
        # Counted before parsing: httptools buffers a header until it ends, however long.
        self._header_bytes += len(data)
        super().data_received(data)
        # Still in the headers after this chunk (a chunk that completes them may carry body).
        if (
            self._reading_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            message = f"Request headers exceed {self.max_header_bytes} bytes"
            self._answer_and_close(431, "headers_too_large", message)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0

    # -- malformed requests --------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        if self._too_deep:  # not malformed: ours (on_headers_complete) stopped the parser
            message = f"more than {MAX_PIPELINED} requests pipelined on one connection"
            self._refused(None, "pipeline_too_deep", message)
            self._cancel_header_timer()
            # No answer: one written now would land amid the answers still being written.
            self.transport.abort()
            return
        self._answer_and_close(400, "bad_request", msg)

    def _answer_and_close(self, status: int, type: str, message: str) -> None:
        """A refusal answered in the error shape below the app: counted (`_refused`), written,
        and the connection closed."""
        self._refused(status, type, message)
        self._cancel_header_timer()
        self.transport.write(raw_error(status, message, type=type))
        self.transport.close()


def guarded_protocol(
    header_timeout_s: float,
    max_header_bytes: int,
    max_connections: int,
    write_timeout_s: float = 10.0,
    on_refusal: RefusalObserver = _ignore_refusal,
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits; `on_refusal` counts
    each refusal (the app's `Metrics.observe_refusal`)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
            "write_timeout_s": write_timeout_s,
            "on_refusal": staticmethod(on_refusal),
        },
    )
