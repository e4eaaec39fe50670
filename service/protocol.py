"""uvicorn's httptools protocol with the limits a public socket needs before any ASGI code runs:

* a header deadline, armed when the connection opens (and, on a kept-alive connection, when
  the next request's first byte arrives): headers not complete by then get 408 and the
  connection is closed, so a client that sends half its headers and stops (slowloris), or
  connects and says nothing, frees its socket;
* a header size limit, counted on the raw bytes as they arrive, so an endless header is
  refused (431) after `max_header_bytes`, never buffered whole;
* a connection limit: beyond `max_connections` open connections each request gets 503 with
  `Retry-After` and the connection is closed (uvicorn's own `limit_concurrency` answers in
  plain text);
* the answers uvicorn writes itself for malformed HTTP come in the service's one error shape.

h11 (uvicorn's other parser) has a size limit but no header deadline either, and is slower.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import error_body, send_json
from service.middleware import new_request_id

# Connection limit answers carry this; a well-behaved client retries after it.
RETRY_AFTER_S = 1


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


# Scope key: how many connections this process had open when the request's headers arrived.
OPEN_CONNECTIONS = "sentiment.open_connections"


def lone_client(scope: Any) -> bool:
    """The request's connection is the only one this process has open (true when unknown, as
    under a test transport): nobody else could use the event loop while it is served."""
    return int(scope.get(OPEN_CONNECTIONS, 1)) <= 1


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Configure with `guarded_protocol(...)`, which sets the three limits below."""

    header_timeout_s: float = 5.0
    max_header_bytes: int = 65536
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = True  # from connection start, and after each complete request
        self._header_bytes = 0

    # -- header deadline -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        if self._header_timer is None:  # a kept-alive connection's next request
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._reading_headers = False
        self._header_bytes = 0
        # Decided per request, like uvicorn's limit_concurrency, but answered in our shape.
        open_connections = len(self.connections)
        self.app = _over_capacity if open_connections > self.max_connections else self._app
        self.scope[OPEN_CONNECTIONS] = open_connections  # type: ignore[literal-required]
        super().on_headers_complete()

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
        if self._header_bytes and not answering:
            message = f"Request headers not received within {self.header_timeout_s:g}s"
            self.transport.write(raw_error(408, message, type="request_timeout"))
        self.transport.close()

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
            self._refuse(raw_error(431, message, type="headers_too_large"))

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0

    # -- malformed requests --------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        self._refuse(raw_error(400, msg, type="bad_request"))

    def _refuse(self, response: bytes) -> None:
        self._cancel_header_timer()
        self.transport.write(response)
        self.transport.close()


def guarded_protocol(
    header_timeout_s: float, max_header_bytes: int, max_connections: int
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
        },
    )
