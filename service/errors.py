"""The one error shape, `{"error": {"type", "message", "request_id", "details"?}}`, for every
non-2xx answer: ours, FastAPI's validation errors, Starlette's 404/405 and crashes alike."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger("service.errors")

MAX_DETAILS = 20  # a 10,000-item request must not produce a 10,000-item answer

_TYPES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "not_ready",
    504: "timeout",
}


class ApiError(Exception):
    """An error answer: raise it anywhere below a route."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or _TYPES_BY_STATUS.get(status, "error")
        self.message = message
        self.details = list(details) if details else None
        self.headers = dict(headers or {})


def error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    request_id: str | None = None,
    details: Sequence[Mapping[str, Any]] | None = None,
) -> bytes:
    error: dict[str, Any] = {
        "type": type or _TYPES_BY_STATUS.get(status, "error"),
        "message": message,
        "request_id": request_id,
    }
    if details:
        error["details"] = list(details[:MAX_DETAILS])
    return orjson.dumps({"error": error})


async def send_json(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A whole JSON response through a raw ASGI `send` (where no Response class is at hand)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    request_id: str | None = None,
    details: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = error_body(status, message, type=type, request_id=request_id, details=details)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def field_name(loc: Iterable[str | int]) -> str:
    """('texts', 3) -> 'texts[3]'; () -> 'body'."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def validation_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic errors -> [{'field', 'message', 'type'}], never echoing the (maybe huge) input."""
    details = []
    for error in errors:
        loc = list(error.get("loc", ()))
        # FastAPI prefixes the source ("body", "query"); the field is what a client can fix.
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        details.append(
            {
                "field": field_name(loc),
                "message": str(error.get("msg", "")),
                "type": error.get("type", ""),
            }
        )
        if len(details) >= MAX_DETAILS:
            break
    return details


def validation_error(errors: Iterable[Mapping[str, Any]], total: int | None = None) -> ApiError:
    details = validation_details(errors)
    first = details[0] if details else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    extra = (total if total is not None else len(details)) - 1
    if extra > 0:
        message += f" (and {extra} more error{'s' if extra > 1 else ''})"
    return ApiError(422, message, type="validation_error", details=details)


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(request, exc)


def api_error_response(request: Request, exc: ApiError) -> Response:
    return error_response(
        exc.status,
        exc.message,
        type=exc.type,
        request_id=request_id_of(request),
        details=exc.details,
        headers=exc.headers,
    )


def allowed_methods(declared: str) -> str:
    """The Allow header of a route: what it declares, plus HEAD with GET (the middleware answers
    it) and OPTIONS (answered here)."""
    methods = [m.strip() for m in declared.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    if "OPTIONS" not in methods:
        methods.append("OPTIONS")
    return ", ".join(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    method = getattr(request.state, "method", request.method)  # HEAD arrives here as GET
    if status == 405 and "Allow" in headers:
        headers["Allow"] = allowed_methods(headers["Allow"])
        if method == "OPTIONS":  # a route that exists: say what it takes, no error
            return Response(status_code=204, headers=headers)
    message = exc.detail if isinstance(exc.detail, str) else _TYPES_BY_STATUS.get(status, "error")
    if status == 404:
        message = f"No route for {request.url.path}"
    elif status == 405:
        message = f"Method {method} not allowed on {request.url.path}"
    return error_response(status, message, request_id=request_id_of(request), headers=headers)


async def _request_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    api_error = validation_error(errors, total=len(errors))
    return await _api_error(request, api_error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
