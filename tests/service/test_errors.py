"""Every error case: its status, and the one error shape (tests/service/conftest.assert_error)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from model.explain import explain_batch
from service.app.routes import public_paths
from service.config import Settings
from service.runtime.sentiment_model import load_explain_fn
from tests.metrics_text import samples, total
from tests.service.conftest import BASE_URL, assert_error, running

# Added to a deadline the app keeps: the scheduling delay of a busy 2-core machine.
BUSY_SLACK_S = 3.0

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


async def post_raw(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/predict", content=body, headers=JSON if headers is None else headers)


@pytest.fixture
async def client(app_factory: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app_factory(max_chars=50, max_batch=4, max_body_bytes=4096)) as c:
        yield c


# -- 400 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "type_"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"text": "caf\xe9"}', "invalid_encoding"),  # latin-1, not UTF-8
        (b'{"text": "a\xff\xfeb"}', "invalid_encoding"),
        (b'{"text": "a\x00b"}', "invalid_json"),  # raw NUL: a control character in a string
        (b'{"text": "a\\u0000b"}', "invalid_text"),  # escaped NUL: valid JSON, refused still
        (b'{"text": "a\\ud800"}', "invalid_json"),  # lone surrogate
        (b"[" * 100_000 + b"]" * 100_000, None),  # deep nesting (over the body limit here)
    ],
)
async def test_bad_bodies_are_400(
    client: httpx.AsyncClient, body: bytes, type_: str | None
) -> None:
    response = await post_raw(client, body)
    if len(body) > 4096:
        assert_error(response, 413)
    else:
        assert_error(response, 400, type_)


async def test_deeply_nested_json_is_400_without_crashing(
    app_factory: Callable[..., FastAPI],
) -> None:
    async with running(app_factory()) as client:
        array = await post_raw(client, b"[" * 50_000 + b"]" * 50_000)
        objects = await post_raw(client, b'{"a":' * 20_000 + b"1" + b"}" * 20_000)
        in_field = await post_raw(client, b'{"text":' + b"[" * 500 + b"]" * 500 + b"}")
        after = await client.post("/predict", json={"text": "fine"})
    assert_error(array, 400, "invalid_json")
    assert_error(objects, 400, "invalid_json")
    assert_error(in_field, 422, "validation_error")
    assert after.status_code == 200


async def test_nul_in_a_batch_names_the_item(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.post("/predict", json={"texts": ["ok", "b\x00d"]}), 400)
    assert error["details"][0]["field"] == "texts[1]"


# -- 415 / 413 / 408 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
        {"content-type": "application/json; charset=latin-1"},
    ],
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert_error(await post_raw(client, b'{"text": "ok"}', headers), 415, "unsupported_media_type")


async def test_content_type_parameters_are_accepted(client: httpx.AsyncClient) -> None:
    ok = await post_raw(
        client, b'{"text": "ok"}', {"content-type": "Application/JSON; charset=UTF-8"}
    )
    assert ok.status_code == 200


async def test_declared_oversize_body_is_refused_before_reading(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory(max_body_bytes=1000)
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async with running(app):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1),
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"10000000")],
        }
        await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert not received  # not one chunk read


async def test_streamed_oversize_body_is_cut_off(app_factory: Callable[..., FastAPI]) -> None:
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(10_000):  # 10 MB in all, no Content-Length (chunked)
            chunks_sent += 1
            yield b"x" * 1000

    async with running(app_factory(max_body_bytes=5000)) as client:
        response = await client.post("/predict", content=chunks(), headers=JSON)
    assert_error(response, 413, "payload_too_large")
    assert chunks_sent < 100


async def test_ten_megabyte_body_is_413_fast(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await post_raw(client, b'{"text": "' + b"a" * 10_000_000 + b'"}')
    assert_error(response, 413, "payload_too_large")  # a body deadline would have been a 408
    assert time.perf_counter() - started < Settings().body_timeout_s  # held to no deadline


async def test_slow_body_times_out_with_408(app_factory: Callable[..., FastAPI]) -> None:
    async def drip() -> AsyncIterator[bytes]:
        yield b'{"text": '
        await asyncio.sleep(60)  # a server that waited for the body would take a minute
        yield b'"late"}'

    async with running(app_factory(body_timeout_s=0.2, request_timeout_s=1)) as client:
        started = time.perf_counter()
        response = await client.post("/predict", content=drip(), headers=JSON)
        elapsed = time.perf_counter() - started
    assert_error(response, 408, "request_timeout")
    assert 0.2 <= elapsed < 0.2 + BUSY_SLACK_S, elapsed  # at the body deadline


# -- 422 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n\t "}, "text"),
        ({"text": "x" * 51}, "text"),
        ({"texts": ["ok", "fine", ""]}, "texts[2]"),
        ({"texts": ["ok", " "]}, "texts[1]"),
        ({"texts": ["ok", "x" * 51]}, "texts[1]"),
        ({"texts": ["a", "b", "c", "d", "e"]}, "texts"),
        ({"texts": []}, "texts"),
        ({"text": "a", "texts": ["b"]}, "body"),
        ({}, "body"),
        ({"text": None}, "text"),
        ({"text": "ok", "texts": None}, "texts"),
        ({"text": 42}, "text"),
        ({"text": ["a"]}, "text"),
        ({"texts": "a"}, "texts"),
        ({"texts": ["a", 7]}, "texts[1]"),
        ({"text": "ok", "explain": "yes"}, "explain"),
        ({"text": "ok", "label": "positive"}, "label"),
        (["ok"], "body"),
        ("ok", "body"),
    ],
)
async def test_schema_violations_are_422_naming_field_and_index(
    client: httpx.AsyncClient, payload: object, field: str
) -> None:
    error = assert_error(await client.post("/predict", json=payload), 422, "validation_error")
    assert error["details"][0]["field"] == field
    assert error["message"].startswith(field)


async def test_ten_thousand_texts_are_422_fast(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory(max_body_bytes=1 << 20)) as client:
        started = time.perf_counter()
        response = await client.post("/predict", json={"texts": ["good film"] * 10_000})
        elapsed = time.perf_counter() - started
        scored = total(samples((await client.get("/metrics")).text), "sentiment_predictions_total")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "texts"
    assert scored == 0  # refused on the count, before any scoring
    assert elapsed < Settings().request_timeout_s  # and held to no deadline


async def test_many_bad_items_give_a_bounded_error(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory(max_batch=500)) as client:
        response = await client.post("/predict", json={"texts": [""] * 500})
    error = assert_error(response, 422)
    assert len(error["details"]) <= 20
    assert "499 more" in error["message"]


async def test_too_many_texts_to_explain_is_422(app_factory: Callable[..., FastAPI]) -> None:
    assert load_explain_fn() is explain_batch  # the service uses the project's own module
    async with running(app_factory(max_explain_texts=2)) as client:
        response = await client.post("/predict", json={"texts": ["a", "b", "c"], "explain": True})
    assert assert_error(response, 422)["details"][0]["field"] == "texts"


async def test_explain_without_the_module_is_501(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.runtime.sentiment_model.load_explain_fn", lambda: None)
    app = app_factory()
    async with running(app) as client:
        response = await client.post("/predict", json={"text": "a", "explain": True})
        plain = await client.post("/predict", json={"text": "a"})
    assert_error(response, 501, "not_implemented")
    assert plain.status_code == 200
    assert "501" in app.openapi()["paths"]["/predict"]["post"]["responses"]  # and documented


# -- 401 / 404 / 405 ----------------------------------------------------------------------------


async def test_api_key_guards_predict_model_and_metrics(app_factory: Callable[..., FastAPI]) -> None:
    good = {"Authorization": "Bearer s3cret"}
    async with running(app_factory(api_key="s3cret")) as client:
        for path in ("/predict", "/model", "/metrics"):
            method = client.post if path == "/predict" else client.get
            kwargs: dict[str, Any] = {"json": {"text": "ok"}} if path == "/predict" else {}
            assert_error(await method(path, **kwargs), 401, "unauthorized")
            wrong = await method(path, headers={"Authorization": "Bearer nope"}, **kwargs)
            assert_error(wrong, 401, "unauthorized")
            assert wrong.headers["www-authenticate"] == "Bearer"
            basic = await method(path, headers={"Authorization": "Basic czNjcmV0"}, **kwargs)
            assert_error(basic, 401)
            assert (await method(path, headers=good, **kwargs)).status_code == 200
        for path in ("/health", "/health/live"):  # probes never need the key
            assert (await client.get(path)).status_code == 200


async def test_metrics_public_leaves_only_metrics_open(app_factory: Callable[..., FastAPI]) -> None:
    async with running(app_factory(api_key="s3cret", metrics_public=True)) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert_error(await client.get("/model"), 401, "unauthorized")


@pytest.mark.parametrize("metrics_public", [False, True])
async def test_every_route_the_app_registers_needs_the_key_unless_named_public(
    app_factory: Callable[..., FastAPI], metrics_public: bool
) -> None:
    # Walked from the app itself, FastAPI's own /docs and /openapi.json included: a route
    # added anywhere, by any means, is checked without being listed here.
    app = app_factory(api_key="s3cret", metrics_public=metrics_public)
    public = public_paths(app.state.settings)
    assert ("/metrics" in public) == metrics_public
    routes = [(str(c.path), sorted(c.methods or ())) for c in iter_route_contexts(app.routes)]
    paths = {path for path, _ in routes}
    assert paths >= public  # no stale name in the list
    assert paths - public >= {"/predict", "/model"}
    good = {"Authorization": "Bearer s3cret"}
    async with running(app) as client:
        for path, methods in routes:
            url = re.sub(r"\{[^}]*\}", "x", path)
            for method in methods:
                bare = await client.request(method, url)
                keyed = await client.request(method, url, headers=good)
                where = f"{method} {path}"
                if path in public:
                    assert bare.status_code != 401 and bare.status_code < 500, where
                    assert bare.status_code == keyed.status_code, where  # the key changes nothing
                else:
                    assert assert_error(bare, 401, "unauthorized"), where
                    assert bare.headers["www-authenticate"] == "Bearer", where
                    assert keyed.status_code not in (401, 403) and keyed.status_code < 500, where
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # The published description says which operations need the key: exactly the guarded ones.
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            needs_key = {"HTTPBearer": []} in operation.get("security", [])
            assert needs_key == (path not in public), (method, path)


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nothing/here"), 404, "not_found")
    assert_error(await client.get("/predict"), 405, "method_not_allowed")
    assert_error(await client.delete("/health"), 405, "method_not_allowed")


# -- 429 / 503 / 504 / 500 ----------------------------------------------------------------------


def slow_handler(app: FastAPI, seconds: float) -> None:
    """Make the model slow after start-up. A model slow from the start is never scored inline
    (its learnt cost is too high); this one turned slow after warming up, so say it here."""
    batcher = app.state.runtime.batcher
    batcher.config.inline_max_s = 0
    model_call = batcher.handler

    def slow(batch: list[list[int]]) -> list[list[float]]:
        time.sleep(seconds)
        return model_call(batch)

    batcher.handler = slow


async def test_queue_full_is_429_with_retry_after(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(max_queue=4, max_batch=4, max_batch_size=1)
    async with running(app) as client:
        slow_handler(app, 0.3)
        responses = await asyncio.gather(
            *(client.post("/predict", json={"text": "x"}) for _ in range(12))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 5 and 429 in statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert_error(refused, 429, "queue_full")
    assert int(refused.headers["retry-after"]) >= 1


async def test_not_ready_is_503(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory()  # start-up never runs: the model stays "loading"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        health = await client.get("/health")
        predict = await client.post("/predict", json={"text": "ok"})
        model = await client.get("/model")
        live = await client.get("/health/live")
    assert health.status_code == 503
    assert health.json()["status"] == "loading"
    assert_error(health, 503, "not_ready")
    assert_error(predict, 503, "not_ready")
    assert predict.headers["retry-after"] == "1"
    assert_error(model, 503, "not_ready")
    assert live.status_code == 200


async def test_failed_start_reports_failed(
    app_factory: Callable[..., FastAPI], tmp_path: Any
) -> None:
    app = app_factory(model_dir=tmp_path / "missing")
    async with running(app, ready=False) as client:
        await app.state.runtime.wait_started()
        health = await client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "missing" in health.json()["error"]["message"]


async def test_an_onnx_graph_that_drifts_from_pytorch_fails_start_up(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.model.test_onnx_graph import drift_the_graph

    drift_the_graph(monkeypatch)
    app = app_factory(inference_backend="onnx")
    async with running(app, ready=False) as client:
        await app.state.runtime.wait_started()
        health = await client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "differ from PyTorch's" in health.json()["error"]["message"]


async def test_past_deadline_is_504(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(request_timeout_s=0.3, body_timeout_s=0.3)
    async with running(app) as client:
        batcher = app.state.runtime.batcher
        batcher.config.inline_max_s = 0
        model_call = batcher.handler
        release = threading.Event()

        def held(batch: list[list[int]]) -> list[list[float]]:
            release.wait(30)  # the call cannot end before the answer below has come
            return model_call(batch)

        batcher.handler = held
        started = time.perf_counter()
        response = await client.post("/predict", json={"text": "slow"})
        elapsed = time.perf_counter() - started
        release.set()
        # Answered at the deadline, while the call was still held: not after the call.
        assert_error(response, 504, "timeout")
        assert 0.3 <= elapsed < 30, elapsed
        assert (await client.get("/health")).status_code == 200
        batcher.handler = model_call
        assert (await client.post("/predict", json={"text": "fine"})).status_code == 200


async def test_failing_batch_is_500_and_server_keeps_serving(
    app_factory: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory()
    async with running(app) as client:
        batcher = app.state.runtime.batcher
        model_call = batcher.handler

        def broken(batch: list[list[int]]) -> list[list[float]]:
            raise RuntimeError("simulated model failure")

        batcher.handler = broken
        with caplog.at_level(logging.ERROR, logger="service.errors"):
            failed = await client.post(
                "/predict", json={"texts": ["a", "b"]}, headers={"X-Request-ID": "r-1"}
            )
        batcher.handler = model_call
        after = await client.post("/predict", json={"text": "a"})
        health = await client.get("/health")
    error = assert_error(failed, 500, "internal_error")
    assert "r-1" in error["message"] and "simulated" not in error["message"]
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == "r-1")
    assert record.exc_info is not None  # logged with its traceback
    assert after.status_code == 200 and health.status_code == 200


async def test_one_poisoned_review_does_not_fail_its_batch_mates(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory(max_batch_size=32, max_wait_ms=50)
    async with running(app) as client:
        runtime = app.state.runtime
        poison = runtime.model.decode("awful")
        model_call = runtime.batcher.handler

        batches: list[list[list[int]]] = []

        def picky(batch: list[list[int]]) -> list[list[float]]:
            batches.append(list(batch))
            if poison in batch:
                raise ValueError("cannot score this one")
            return model_call(batch)

        runtime.batcher.handler = picky
        slow_handler(app, 0.05)  # so the requests below queue up together behind one call
        texts = ["good", "great", "awful", "superb", "wonderful"]
        responses = await asyncio.gather(
            *(client.post("/predict", json={"text": t}) for t in texts)
        )
        alone = {t: model_call([runtime.model.decode(t)])[0] for t in texts if t != "awful"}
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 500, 200, 200]
    # They were its batch mates: a batch held the poisoned review and another one.
    assert any(poison in batch and len(batch) > 1 for batch in batches), batches
    # ... and each got the answer it gets when scored on its own.
    for text, response in zip(texts, responses, strict=True):
        if text in alone:
            (prediction,) = response.json()["predictions"]
            assert list(prediction["probabilities"].values()) == pytest.approx(alone[text], abs=1e-6)


async def test_fastapi_validation_errors_use_the_one_shape(
    app_factory: Callable[..., FastAPI],
) -> None:
    app = app_factory()

    @app.get("/test-only/{number}")
    async def typed(number: int, flag: bool = False) -> dict[str, int]:
        return {"number": number}

    async with running(app) as client:
        response = await client.get("/test-only/seven")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "number"
