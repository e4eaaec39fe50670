"""POST /predict beneath FastAPI's routing and dependency injection, and ahead of its outer
layers.

Nearly every request is a POST /predict, and for one review FastAPI's per-request machinery
(route matching, dependency solving, its exit stack, the exception middleware) cost about as
much CPU as the rest of the request path. The middleware (service/app/middleware.py) hands
exactly that method and path to the handler built here, which runs the same work as the
FastAPI route (`routes.score`), with the same API-key check and the same error answers. The
route stays registered, so the OpenAPI schema and /docs are FastAPI's as before.

`ServiceApp` goes one step further: once started, it hands POST /predict straight to a
request-context middleware of its own (`open_front`), so those requests skip the layers FastAPI
puts around every app (its error page, which the middleware's own 500 replaces; its
OpenTelemetry hook; its body limit, which the handler's own reading enforces); what that
saves is measured by `python -m bench.app_cost` (docs/benchmarks.md). When OpenTelemetry is
configured at start-up, every request keeps FastAPI's way, so /predict stays traced.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.app.middleware import RequestContextMiddleware
from service.app.routes import bearer, check_api_key, score
from service.config import Settings
from service.errors import ApiError, api_error_response
from service.runtime.metrics import Metrics
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


class ServiceApp(FastAPI):
    """FastAPI, with POST /predict entered at `front` once `open_front` has set it."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http" and scope["path"] == PREDICT[1] and (
            scope["method"] == PREDICT[0]
        ):
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def open_front(self, metrics: Metrics) -> None:
        """At start-up, once every route is in place (see the module doc)."""
        telemetry = getattr(self, "_native_telemetry", None)  # FastAPI's OpenTelemetry hook
        if telemetry is not None and telemetry.enabled():
            return
        # Entered only for POST /predict, so its app is that handler (no dispatch of its own).
        self.front = RequestContextMiddleware(lean_routes(self)[PREDICT], metrics)
