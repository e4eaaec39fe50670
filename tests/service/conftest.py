"""Fixtures for the service tests: settings over the session's tiny checkpoint, and an httpx
client bound to the ASGI app with its lifespan running (start-up and shutdown included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app.factory import create_app
from service.config import Settings

BASE_URL = "http://testserver"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(tiny_checkpoint_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        # The tiny checkpoint knows some 30 words, so to it most test texts are unreadable
        # (too few words it knows): they are scored anyway unless a test picks another policy
        # (tests/service/test_language.py tests each one).
        values: dict[str, Any] = {
            "model_dir": tiny_checkpoint_dir,
            "log_level": "WARNING",
            "unsupported_text": "score",
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def wait_ready(client: httpx.AsyncClient, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (await client.get("/health")).status_code != 200:
        if loop.time() > end:
            raise TimeoutError("the app did not become ready")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(app: FastAPI, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app with start-up done (and shutdown after), plus a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            if ready:
                await wait_ready(client)
            yield client


@pytest.fixture
def app_factory(make_settings: Callable[..., Settings]) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        return create_app(make_settings(**overrides))

    return make


def assert_error(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    """The one error shape, with the expected status (and type); returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error"}, body
    error = body["error"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if type_ is not None:
        assert error["type"] == type_, error
    return error
