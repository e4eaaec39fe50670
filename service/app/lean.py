"""POST /predict beneath FastAPI's routing and dependency injection.

Nearly every request is a POST /predict, and for one review FastAPI's per-request machinery
(route matching, dependency solving, its exit stack, the exception middleware) cost about as
much CPU as the rest of the request path. The middleware (service/app/middleware.py) hands
exactly that method and path to the handler built here, which runs the same work as the
FastAPI route (`routes.score`), with the same API-key check and the same error answers. The
route stays registered, so the OpenAPI schema and /docs are FastAPI's as before.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app.routes import bearer, check_api_key, score
from service.config import Settings
from service.errors import ApiError, api_error_response
from service.runtime.runtime import Runtime

PREDICT = ("POST", "/predict")


def lean_routes(app: FastAPI) -> dict[tuple[str, str], ASGIApp]:
    """(method, path) -> handler, for the middleware to serve without FastAPI's router."""
    method, path = PREDICT
    routes = iter_route_contexts(app.routes)
    route = next(c.original_route for c in routes if c.path == path and method in (c.methods or ()))
    settings: Settings = app.state.settings
    runtime: Runtime[Any, Any] = app.state.runtime

    async def predict(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route  # what the router would set: the metrics label its template
        request = Request(scope, receive)
        try:
            if settings.api_key is not None:
                check_api_key(settings, await bearer(request))
            response = await score(request, runtime, settings)
        except ApiError as exc:
            response = api_error_response(request, exc)
        await response(scope, receive, send)

    return {PREDICT: predict}
