"""HTTP routes: thin; request bodies are read in request_body.py, scored by the runtime."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from service.app.page import build_page_router
from service.app.request_body import (
    check_content_type,
    lone_client,
    parse_json,
    read_body,
    reject_nul,
    time_left,
    validate,
)
from service.config import Settings
from service.errors import ApiError, request_id_of
from service.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.runtime.metrics import Metrics
from service.runtime.runtime import Runtime
from service.schemas import (
    REQUEST_EXAMPLES,
    ErrorResponse,
    HealthResponse,
    LiveResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
)

JSON = "application/json"

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API_KEY>`")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# What the protocol layer (service/server/http_guard.py) answers for any route, before the app
# sees the request: documented on every operation (`build_router`), so a client and a schema
# fuzzer find every status they can get. A route that also answers one of these codes itself
# names both causes.
PROTOCOL_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed HTTP (request line, headers or Content-Length), refused below the app"),
    408: _error("The request headers did not arrive within BODY_TIMEOUT_S"),
    431: _error("Request line and headers larger than MAX_HEADER_BYTES"),
}
OVER_CAPACITY = "MAX_CONNECTIONS connections already open"  # 503 below the app, but to probes

PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid JSON, non-UTF-8 body or NUL characters; or malformed HTTP"),
    401: _error("Missing or wrong API key (only when API_KEY is set)"),
    408: _error("The headers or the body did not arrive within BODY_TIMEOUT_S"),
    413: _error("Body larger than MAX_BODY_BYTES"),
    415: _error("Content-Type is not application/json"),
    422: _error(
        "Schema violation; `details` name each field and item index. Also `unsupported_text`: "
        "under UNSUPPORTED_TEXT=refuse, a single `text` the model cannot read (another "
        "language, or too few words it knows; in a batch such a text is answered with "
        "`readable: false` and an `error` of its own instead)"
    ),
    429: _error("Queue full; retry after the Retry-After header"),
    500: _error("Unexpected error; the message carries the request id"),
    501: _error("`explain` or `sentences` asked of a served model that cannot explain or split"),
    503: _error(f"Model not loaded yet, or shutting down; or {OVER_CAPACITY}"),
    504: _error("No answer within REQUEST_TIMEOUT_S"),
}


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


# Dependencies are coroutines on purpose: FastAPI runs a plain `def` dependency on its thread
# pool, a thread hand-off per request for a mere attribute read.
async def runtime_of(request: Request) -> Runtime[Any, Any]:
    runtime: Runtime[Any, Any] = request.app.state.runtime
    return runtime


async def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


# What routes declare to reach the app's parts (set up by create_app on app.state).
RuntimeDep = Annotated[Runtime[Any, Any], Depends(runtime_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
MetricsDep = Annotated[Metrics, Depends(metrics_of)]


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless the request carries the configured bearer key."""
    check_api_key(settings, credentials)


def check_api_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    key = settings.api_key
    if key is None:
        return
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), key.get_secret_value().encode()
    ):
        raise ApiError(
            401,
            "Missing or invalid API key",
            type="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _predict_openapi(model: type[PredictRequest]) -> dict[str, Any]:
    # The body is read by hand (size limit, deadline, orjson), so describe it here.
    return {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": model.model_json_schema(), "examples": REQUEST_EXAMPLES}},
        }
    }


# The routes anyone may call when API_KEY is set; every other route needs the key. The one
# list (with /metrics, see public_paths): build_router puts only these on its unguarded router,
# and tests/service/test_errors.py walks every route the app registers against it.
PUBLIC_PATHS = frozenset({
    "/", "/static/{name}",  # the try-it page holds no data; it asks for the key when one is set
    "/health", "/health/live",  # probes carry no key
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",  # FastAPI's API description
})


def public_paths(settings: Settings) -> frozenset[str]:
    """PUBLIC_PATHS, and /metrics when METRICS_PUBLIC is set: per-label counts of everyone's
    requests are not for anyone who can reach the port unless the operator says so."""
    return (PUBLIC_PATHS | {"/metrics"}) if settings.metrics_public else PUBLIC_PATHS


async def score(request: Request, runtime: Runtime[Any, Any], settings: Settings) -> Response:
    """POST /predict's work, for the FastAPI route and for its lean path (service/app/lean.py)."""
    runtime.serving_model()
    check_content_type(request)
    body = await read_body(
        request,
        settings.max_body_bytes,
        min(settings.body_timeout_s, time_left(request, settings.request_timeout_s)),
    )
    payload = validate(runtime.request_model, parse_json(body))
    reject_nul(payload.items, single=payload.texts is None)
    result, batch_size = await runtime.predict(
        payload, time_left(request, settings.request_timeout_s), alone=lone_client(request.scope)
    )
    request.state.batch_size = batch_size
    return json_response(result)


def build_router(settings: Settings, request_model: type[PredictRequest]) -> APIRouter:
    # A route is guarded unless it is added to `public`, which takes only PUBLIC_PATHS: a new
    # route cannot ship open by forgetting to opt in.
    guarded = APIRouter(dependencies=[Depends(require_api_key)] if settings.api_key is not None else [])
    public = APIRouter()
    public.include_router(build_page_router(api_key_required=settings.api_key is not None))

    @guarded.post(
        "/predict",
        response_model=PredictResponse,
        responses=PREDICT_ERRORS,
        openapi_extra=_predict_openapi(request_model),
        summary="Score reviews",
        tags=["scoring"],
    )
    async def predict(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Response:
        """Score one review (`text`) or several (`texts`); answers come in input order."""
        return await score(request, runtime, settings)

    @public.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"description": "Loading, draining or failed", "model": HealthResponse}},
        tags=["operations"],
    )
    async def health(request: Request, runtime: RuntimeDep) -> Response:
        """Readiness: 200 once the model is loaded and warm (in every worker); 503 while
        loading or draining."""
        if runtime.ready_everywhere():
            assert runtime.model is not None
            return json_response({"status": "ok", "model": runtime.model.model_id})
        status = runtime.status
        message = {
            "loading": "Model is loading",
            "draining": "Shutting down",
            "failed": f"Start-up failed: {runtime.failure}",
        }.get(status, "")
        if status == "ok":  # this worker is ready, another one is not (yet)
            assert runtime.slot is not None
            status, message = "loading", f"Model is loading ({runtime.slot.describe()})"
        # Carries both the probe's field and the one error shape.
        error = {"type": "not_ready", "message": message, "request_id": request_id_of(request)}
        return json_response({"status": status, "error": error}, status=503)

    @public.get("/health/live", response_model=LiveResponse, tags=["operations"])
    async def live() -> Response:
        """Liveness: 200 while the process runs, whatever the model is doing."""
        return json_response({"status": "alive"})

    @guarded.get(
        "/model",
        response_model=ModelInfo,
        responses={
            401: _error("Missing or wrong API key"),
            503: _error(f"Model not loaded yet; or {OVER_CAPACITY}"),
        },
        tags=["scoring"],
    )
    async def model_info(runtime: RuntimeDep) -> Response:
        """Metadata of the checkpoint being served."""
        return json_response(runtime.info())

    @(public if settings.metrics_public else guarded).get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text"},
            401: _error("Missing or wrong API key (API_KEY set, METRICS_PUBLIC not)"),
            503: _error(OVER_CAPACITY),
        },
        tags=["operations"],
    )
    async def metrics(metrics: MetricsDep) -> Response:
        """Prometheus metrics (all workers together)."""
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    served = {str(route.path) for route in iter_route_contexts(public.routes)}
    unnamed = sorted(served - public_paths(settings))
    if unnamed:
        raise RuntimeError(f"routes served without the API key but not in PUBLIC_PATHS: {unnamed}")
    router = APIRouter()
    router.include_router(public, responses=PROTOCOL_ERRORS)
    router.include_router(guarded, responses=PROTOCOL_ERRORS)
    return router
