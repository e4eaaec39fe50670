"""service/client.py: parsing, errors and the retry policy (mock transports), plus the async
client against the real app in-process."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from service.client import (
    AsyncSentimentClient,
    RetryPolicy,
    SentimentClient,
    ServiceError,
    parse_retry_after,
)
from tests.service.conftest import running

FAST = RetryPolicy(attempts=4, backoff_s=0.001, max_backoff_s=0.002)
OK_BODY = {
    "model": "m@1",
    "predictions": [
        {
            "label": "positive",
            "confidence": 0.9,
            "probabilities": {"negative": 0.1, "positive": 0.9},
        }
    ],
}


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def error(status: int, type_: str = "x", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"type": type_, "message": "nope", "request_id": "rid"}}
    return httpx.Response(status, json=body, headers=headers)


def test_predict_parses_the_answer_and_sends_the_key() -> None:
    transport, seen = scripted(httpx.Response(200, json=OK_BODY))
    with SentimentClient("http://svc", api_key="k", transport=transport) as client:
        prediction = client.predict("great")
    assert prediction.label == "positive" and prediction.confidence == 0.9
    assert prediction.probabilities == {"negative": 0.1, "positive": 0.9}
    assert seen[0].headers["authorization"] == "Bearer k"
    assert seen[0].url.path == "/predict"
    assert seen[0].read() == b'{"text":"great"}'


def test_retries_429_and_503_honouring_retry_after() -> None:
    transport, seen = scripted(
        error(429, headers={"Retry-After": "0"}), error(503), httpx.Response(200, json=OK_BODY)
    )
    with SentimentClient("http://svc", transport=transport, retry=FAST) as client:
        assert client.predict("x").label == "positive"
    assert len(seen) == 3


def test_retry_after_is_waited() -> None:
    transport, _ = scripted(
        error(429, headers={"Retry-After": "1"}), httpx.Response(200, json=OK_BODY)
    )
    started = time.monotonic()
    with SentimentClient("http://svc", transport=transport, retry=FAST) as client:
        client.predict("x")
    assert time.monotonic() - started >= 0.95


def test_gives_up_after_the_attempts_with_a_service_error() -> None:
    transport, seen = scripted(*(error(503, "not_ready") for _ in range(4)))
    with (
        SentimentClient("http://svc", transport=transport, retry=FAST) as client,
        pytest.raises(ServiceError) as info,
    ):
        client.predict("x")
    assert len(seen) == 4
    assert (info.value.status, info.value.type, info.value.request_id) == (503, "not_ready", "rid")


def test_client_errors_are_not_retried() -> None:
    transport, seen = scripted(error(422, "validation_error"))
    with (
        SentimentClient("http://svc", transport=transport, retry=FAST) as client,
        pytest.raises(ServiceError) as info,
    ):
        client.predict("")
    assert len(seen) == 1 and info.value.status == 422


def test_connection_failures_are_retried() -> None:
    transport, seen = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=OK_BODY))
    with SentimentClient("http://svc", transport=transport, retry=FAST) as client:
        assert client.predict_many(["a"])[0].label == "positive"
    assert len(seen) == 2


def test_timeouts_are_not_retried() -> None:
    transport, seen = scripted(httpx.ReadTimeout("slow"), httpx.Response(200, json=OK_BODY))
    with (
        SentimentClient("http://svc", transport=transport, retry=FAST) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.predict("a")
    assert len(seen) == 1


def test_non_json_error_bodies_still_raise_service_error() -> None:
    transport, _ = scripted(httpx.Response(502, text="bad gateway"))
    with (
        SentimentClient("http://svc", transport=transport, retry=FAST) as client,
        pytest.raises(ServiceError) as info,
    ):
        client.predict("a")
    assert info.value.status == 502 and info.value.type == "http_error"


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 < (parse_retry_after(future) or 0) <= 60


@pytest.mark.anyio
async def test_async_client_against_the_app(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(api_key="k")
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncSentimentClient(
            "http://testserver", api_key="k", transport=transport
        ) as client:
            await client.wait_until_ready(5)
            one = await client.predict("A superb film.")
            many = await client.predict_many(["A superb film.", "Awful."])
            split = await client.predict("A superb film. Awful ending!", sentences=True)
            whole = await client.predict("A superb film. Awful ending!")
            info = await client.model_info()
            assert (await client.health())["status"] == "ok"
            with pytest.raises(ServiceError) as failure:
                await client.predict(" ")
    assert one == many[0] and one.sentences is None and one.mixed is None
    assert split.sentences is not None and [(s.start, s.end) for s in split.sentences] == [(0, 14), (15, 28)]
    assert isinstance(split.mixed, bool)
    assert (split.label, split.probabilities) == (whole.label, whole.probabilities)
    assert info["labels"] == list(one.probabilities)
    assert failure.value.status == 422 and failure.value.type == "validation_error"
    assert failure.value.request_id


@pytest.mark.anyio
async def test_async_client_retries_429() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return (
            error(429, headers={"Retry-After": "0"})
            if calls == 1
            else httpx.Response(200, json=OK_BODY)
        )

    async with AsyncSentimentClient(
        "http://svc", transport=httpx.MockTransport(handle), retry=FAST
    ) as client:
        assert (await client.predict("x")).label == "positive"
    assert calls == 2
