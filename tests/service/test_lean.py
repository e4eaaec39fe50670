"""POST /predict's lean path (service/app/lean.py) answers byte for byte as the FastAPI route
does, successes and errors alike, with the key and without; and it is what serves POST
/predict (the FastAPI route only describes it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import starlette.applications
from fastapi import FastAPI

import service.app.factory
import service.app.lean
from tests.metrics_text import samples, total
from tests.service.conftest import running

KEY = "k" * 24
CASES: list[tuple[str, dict[str, Any]]] = [
    ("one review", {"json": {"text": "A good film with a bad plot."}}),
    ("several", {"json": {"texts": ["good", "bad film", "plot " * 50]}}),
    ("explained", {"json": {"text": "good film", "explain": True}}),
    ("unknown key", {"json": {"text": "good", "colour": "red"}}),
    ("both keys", {"json": {"text": "good", "texts": ["bad"]}}),
    ("empty text", {"json": {"text": ""}}),
    ("not JSON", {"content": b"{nope", "headers": {"content-type": "application/json"}}),
    ("not UTF-8", {"content": b'{"text": "\xff"}', "headers": {"content-type": "application/json"}}),
    ("wrong type", {"content": b'{"text": "a"}', "headers": {"content-type": "text/plain"}}),
    ("no body", {"headers": {"content-type": "application/json"}}),
    ("too large", {"json": {"text": "a" * 5000}}),
    ("NUL", {"json": {"text": "good\u0000film"}}),
]
AUTH: list[dict[str, str]] = [
    {},
    {"authorization": f"Bearer {KEY}"},
    {"authorization": f"bearer {KEY}"},
    {"authorization": "Bearer wrong"},
    {"authorization": f"Basic {KEY}"},
    {"authorization": "Bearer"},
]


async def answers(app: FastAPI, auth: list[dict[str, str]]) -> list[tuple[int, list[Any], bytes]]:
    out = []
    async with running(app) as client:
        for index, (_, request) in enumerate(CASES):
            for n, extra in enumerate(auth):
                headers = {"x-request-id": f"case-{index}-{n}", **request.get("headers", {}), **extra}
                response = await client.post("/predict", **{**request, "headers": headers})
                out.append((response.status_code, sorted(response.headers.items()), response.content))
    return out


def without_lean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service.app.factory, "lean_routes", lambda app: {})


@pytest.mark.anyio
@pytest.mark.parametrize("api_key", [None, KEY])
async def test_the_lean_path_answers_as_the_fastapi_route(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch, api_key: str | None
) -> None:
    settings = {"api_key": api_key, "max_chars": 2000, "max_body_bytes": 4096}
    auth = AUTH if api_key else AUTH[:1]
    lean = await answers(app_factory(**settings), auth)
    without_lean_path(monkeypatch)
    routed = await answers(app_factory(**settings), auth)
    assert len(lean) == len(CASES) * len(auth)
    assert {status for status, _, _ in lean} >= ({200, 400, 413, 415, 422} | ({401} if api_key else set()))
    for (name, _), got, want in zip([c for c in CASES for _ in auth], lean, routed, strict=True):
        assert got == want, name


@pytest.mark.anyio
async def test_post_predict_goes_the_lean_path(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(service.app.lean, "score", counting(calls))
    async with running(app_factory()) as client:
        ok = await client.post("/predict", json={"text": "good"})
        head = await client.get("/predict")
    assert ok.status_code == 200 and len(calls) == 1
    assert head.status_code == 405 and len(calls) == 1  # other methods go through FastAPI


@pytest.mark.anyio
async def test_the_metrics_label_the_lean_path_as_the_route(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory()) as client:
        await client.post("/predict", json={"text": "good"})
        metrics = (await client.get("/metrics")).text
    assert 'route="/predict",status="200"' in metrics


def test_only_post_predict_is_lean(app_factory: Callable[..., FastAPI]) -> None:
    assert set(service.app.lean.lean_routes(app_factory())) == {("POST", "/predict")}


@pytest.mark.anyio
async def test_an_unexpected_error_on_the_lean_path_is_the_one_500(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(service.app.lean, "score", broken)
    async with running(app_factory()) as client:
        response = await client.post("/predict", json={"text": "good"}, headers={"x-request-id": "r1"})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "type": "internal_error",
        "message": "Internal server error (request id r1)",
        "request_id": "r1",
    }


def layers_entered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the requests that entered FastAPI's outer layers (its Starlette stack)."""
    entered: list[str] = []
    call = starlette.applications.Starlette.__call__

    async def noted(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            entered.append(f"{scope['method']} {scope['path']}")
        await call(self, scope, receive, send)

    monkeypatch.setattr(starlette.applications.Starlette, "__call__", noted)
    return entered


@pytest.mark.anyio
async def test_post_predict_skips_fastapis_outer_layers(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = layers_entered(monkeypatch)
    async with running(app_factory()) as client:
        entered.clear()
        ok = await client.post("/predict", json={"text": "good"}, headers={"x-request-id": "r2"})
        other = await client.get("/predict")
        await client.get("/health/live")
        metrics = (await client.get("/metrics")).text
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "r2"
    assert other.status_code == 405
    assert entered == ["GET /predict", "GET /health/live", "GET /metrics"]
    # The front's request context counts and labels it like any other request.
    assert total(samples(metrics), "sentiment_http_requests_total", route="/predict", status="200") == 1


@pytest.mark.anyio
async def test_with_opentelemetry_configured_post_predict_keeps_fastapis_way(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = layers_entered(monkeypatch)
    app = app_factory()
    monkeypatch.setattr(app._native_telemetry, "enabled", lambda: True)  # type: ignore[attr-defined]
    monkeypatch.setattr(service.app.lean, "score", counting(calls := []))
    async with running(app) as client:
        entered.clear()
        ok = await client.post("/predict", json={"text": "good"})
    assert ok.status_code == 200
    assert entered == ["POST /predict"] and calls == [1]  # traced, and still the lean handler


def counting(calls: list[int]) -> Callable[..., Any]:
    score = service.app.lean.score

    async def counted(*args: Any) -> Any:
        calls.append(1)
        return await score(*args)

    return counted
