"""Builds the app; `python -m service` runs it (see __main__.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.app.lean import ServiceApp, lean_routes
from service.app.middleware import RequestContextMiddleware
from service.app.routes import build_router
from service.config import Settings
from service.errors import install_error_handlers
from service.runtime.metrics import Metrics
from service.runtime.runtime import Runtime, SharedReadiness
from service.runtime.sentiment_model import ModelSource, model_loader

DESCRIPTION = """
Scores reviews, comments and posts (products, shops, restaurants, apps, services, films,
tweets) as negative, neutral or positive (the labels the loaded checkpoint declares) with a
recurrent network loaded from a checkpoint (the same text pipeline as training).

* Every non-2xx answer has one shape: `{"error": {"type", "message", "request_id", "details"?}}`.
* Send `X-Request-ID` to correlate logs; one is generated (and echoed) otherwise.
* When `API_KEY` is set, `/predict`, `/model` and `/metrics` (unless `METRICS_PUBLIC`) need
  `Authorization: Bearer <key>`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    model: ModelSource = None,
    slot: SharedReadiness | None = None,
) -> FastAPI:
    """The ASGI app. `model`: a `ServedModel` to serve (tests pass fakes), or a loaded
    checkpoint; None loads MODEL_DIR at start-up. `slot`: this worker's place on the shared
    readiness board when it is one of several (service/server/workers.py)."""
    settings = settings or Settings()
    metrics = Metrics()
    runtime: Runtime[Any, Any] = Runtime(settings, metrics, model_loader(settings, model), slot=slot)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.launch()
        app.open_front(metrics)
        if slot is not None and slot.replacement:
            # uvicorn listens only once this returns: a worker replacing a dead one takes no
            # connection before its model is warm (they wait in its socket meanwhile, where a
            # first start answers 503 loading, as the probes expect).
            await runtime.wait_started()
            if runtime.status == "failed":
                raise RuntimeError(f"start-up failed: {runtime.failure}")
        try:
            yield
        finally:
            await runtime.stop()

    app = ServiceApp(
        title="Sentiment scoring service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(build_router(settings, runtime.request_model))
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        route_paths=lambda: [getattr(route, "path", "") for route in app.routes],
        lean_routes=lambda: lean_routes(app),
    )
    return app
