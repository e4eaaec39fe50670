"""One pure-ASGI middleware (BaseHTTPMiddleware costs far more per request): request id,
timing, metrics, the access log line, and the last-resort 500."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body, send_json
from service.runtime.metrics import Metrics

access_logger = logging.getLogger("service.access")
error_logger = logging.getLogger("service.errors")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")  # anything else is replaced, not echoed


# Generated ids: a random per-process prefix and a counter. Unique enough to correlate logs, and
# far cheaper than uuid4 (a getrandom syscall per request showed up in profiles).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _VALID_ID.fullmatch(candidate):
                return candidate
            break
    return new_request_id()


def as_get(scope: Scope) -> Scope:
    """HEAD is answered as GET (load balancers probe with HEAD): the app sees a GET, and the
    server, which still sees HEAD, sends the headers without the body."""
    if scope.get("method") != "HEAD":
        return scope
    state: dict[str, Any] = scope["state"]
    state["method"] = "HEAD"  # for messages that name the method
    return {**scope, "method": "GET"}


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        route_paths: Callable[[], Iterable[str]] = tuple,
        lean_routes: Callable[[], Mapping[tuple[str, str], ASGIApp]] = dict,
    ) -> None:
        self.app = app
        self.metrics = metrics
        # (method, path) -> a handler beneath FastAPI's router (service/app/lean.py); read once
        # the app is complete, like the route paths.
        self._lean_routes = lean_routes
        self._lean: Mapping[tuple[str, str], ASGIApp] | None = None
        # Paths of routes that do not mark the scope (FastAPI's /docs, /openapi.json): counted
        # under their own label, not "unmatched". Read once the app is complete.
        self._route_paths = route_paths
        self._known: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_id = _request_id(scope["headers"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        method = scope.get("method", "")
        scope = as_get(scope)
        id_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))
        response: dict[str, Any] = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["started"] = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        if self._lean is None:
            self._lean = self._lean_routes()
        handler = self._lean.get((method, scope.get("path", "")), self.app)
        self.metrics.in_flight.inc()
        try:
            await handler(scope, receive, send_with_id)
        except Exception as exc:
            # The server keeps serving: log the traceback with the id, answer a generic 500.
            error_logger.error(
                "unhandled error: %s: %s",
                type(exc).__name__,
                exc,
                exc_info=exc,
                extra={"request_id": request_id, "path": scope.get("path")},
            )
            response["status"] = 500
            if not response["started"]:
                body = error_body(
                    500,
                    f"Internal server error (request id {request_id})",
                    type="internal_error",
                    request_id=request_id,
                )
                await send_json(send_with_id, 500, body)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.monotonic() - started
            self._record(scope, method, state, response["status"], seconds, request_id)

    def _template(self, scope: Scope) -> str:
        template = getattr(scope.get("route"), "path", None)
        if template:
            return str(template)
        if self._known is None:
            self._known = frozenset(self._route_paths())
        path = scope.get("path", "")
        return str(path) if path in self._known else "unmatched"

    def _record(
        self,
        scope: Scope,
        method: str,
        state: dict[str, Any],
        status: int,
        seconds: float,
        request_id: str,
    ) -> None:
        self.metrics.observe_request(self._template(scope), method, status, seconds)
        access_logger.info(
            "%s %s %d",
            method,
            scope.get("path", ""),
            status,
            extra={
                "method": method,
                "path": scope.get("path", ""),
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "batch_size": state.get("batch_size"),
                "request_id": request_id,
            },
        )
