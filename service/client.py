"""A small typed client for the scoring service, sync and async, on httpx.

    with SentimentClient("http://localhost:8000", api_key="...") as client:
        client.predict("Loved every minute.").label          # 'positive'
        [p.label for p in client.predict_many(["Great!", "Awful."])]
        client.predict("Der Film war toll.").readable        # False: German; label None
        client.predict("Great screen. Awful battery.", sentences=True).mixed   # True

    async with AsyncSentimentClient("http://localhost:8000") as client:
        await client.predict("Loved every minute.")

Timeouts apply per attempt. 429 and 503 answers, and transport failures (connection refused or
dropped), are retried with exponential backoff and jitter, honouring Retry-After; scoring is a
pure function of the text, so a retry can never double-apply anything. Other errors raise
`ServiceError` carrying the server's error type, message and request id.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class TokenScore:
    token: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class SentenceScore:
    """One sentence: `text[start:end]` of the text sent (Python str indices)."""

    start: int
    end: int
    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One answer. `readable` is False for a text the model cannot read (another language, or
    too few words it knows; `reason` says which): then label, confidence and probabilities are
    None unless the server scores such texts anyway (UNSUPPORTED_TEXT=score), and `error` holds
    the refusal under UNSUPPORTED_TEXT=refuse."""

    label: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    explanation: list[TokenScore] | None = None
    language: str | None = None  # ISO 639-1; "en" when read, "und" when none was found
    readable: bool = True
    reason: str | None = None  # "other_language" or "unknown_words"
    error: str | None = None  # the refusal's message
    sentences: list[SentenceScore] | None = None  # asked with sentences=True
    mixed: bool | None = None  # idem: a confidently positive and a confidently negative sentence

    @property
    def scored(self) -> bool:
        """Whether there is a label to use."""
        return self.label is not None


@dataclass(frozen=True, slots=True)
class PredictResult:
    model: str
    predictions: list[Prediction]


class ServiceError(Exception):
    """A non-2xx answer, in the service's one error shape."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff_s: float = 0.1  # first pause; doubles each retry
    max_backoff_s: float = 5.0  # cap for computed pauses
    max_retry_after_s: float = 30.0  # cap for the server's Retry-After
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    def pause(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * (2**retry))
        return base * random.uniform(0.5, 1.0)  # jitter: retries of many clients spread out


NO_RETRY = RetryPolicy(attempts=1)

# Failures where the request certainly or possibly never reached the model; timeouts are not
# here: they spend the caller's own budget.
_RETRYABLE_TRANSPORT = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from(response: httpx.Response) -> ServiceError:
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    try:
        error = response.json()["error"]
        return ServiceError(
            response.status_code,
            str(error.get("type", "error")),
            str(error.get("message", "")),
            error.get("request_id") or response.headers.get("x-request-id"),
            retry_after,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ServiceError(
            response.status_code,
            "http_error",
            response.text[:200],
            response.headers.get("x-request-id"),
            retry_after,
        )


def _prediction(data: dict[str, Any]) -> Prediction:
    explanation = data.get("explanation")
    confidence, probabilities, error = data["confidence"], data["probabilities"], data.get("error")
    return Prediction(
        label=data["label"],
        confidence=float(confidence) if confidence is not None else None,
        probabilities={k: float(v) for k, v in probabilities.items()} if probabilities is not None else None,
        explanation=[TokenScore(**t) for t in explanation] if explanation is not None else None,
        language=data.get("language"),
        readable=bool(data.get("readable", True)),
        reason=data.get("reason"),
        error=str(error.get("message", "")) if isinstance(error, dict) else None,
        sentences=_sentences(data.get("sentences")),
        mixed=data.get("mixed"),
    )


def _sentences(data: list[dict[str, Any]] | None) -> list[SentenceScore] | None:
    if data is None:
        return None
    return [
        SentenceScore(
            int(s["start"]), int(s["end"]), str(s["label"]), float(s["confidence"]),
            {k: float(v) for k, v in s["probabilities"].items()},
        )
        for s in data
    ]


def _result(response: httpx.Response) -> PredictResult:
    body = response.json()
    return PredictResult(body["model"], [_prediction(p) for p in body["predictions"]])


class _ClientBase:
    def __init__(
        self, base_url: str, api_key: str | None, retry: RetryPolicy, headers: dict[str, str] | None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.headers = {"accept": "application/json", **(headers or {})}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"

    @staticmethod
    def _predict_body(texts: str | list[str], explain: bool, sentences: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"text": texts} if isinstance(texts, str) else {"texts": list(texts)}
        if explain:
            body["explain"] = True
        if sentences:
            body["sentences"] = True
        return body

    def _pause_after(
        self, attempt: int, response: httpx.Response | None, error: Exception | None
    ) -> float | None:
        """Seconds to wait before another try, or None to give up (and raise/return)."""
        if attempt + 1 >= self.retry.attempts:
            return None
        if error is not None:
            return (
                self.retry.pause(attempt, None) if isinstance(error, _RETRYABLE_TRANSPORT) else None
            )
        assert response is not None
        if response.status_code not in self.retry.statuses:
            return None
        return self.retry.pause(attempt, parse_retry_after(response.headers.get("retry-after")))

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise _error_from(response)
        return response


class SentimentClient(_ClientBase):
    """Blocking client; one connection pool per instance (thread-safe, reuse it)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retry, headers)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers=self.headers,
            transport=transport,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                pause = self._pause_after(attempt, None, exc)
                if pause is None:
                    raise
            else:
                pause = self._pause_after(attempt, response, None)
                if pause is None:
                    return self._checked(response)
            time.sleep(pause)
            attempt += 1

    def predict_result(
        self, texts: str | list[str], *, explain: bool = False, sentences: bool = False
    ) -> PredictResult:
        body = self._predict_body(texts, explain, sentences)
        return _result(self._send("POST", "/predict", json=body))

    def predict(self, text: str, *, explain: bool = False, sentences: bool = False) -> Prediction:
        return self.predict_result(text, explain=explain, sentences=sentences).predictions[0]

    def predict_many(
        self, texts: list[str], *, explain: bool = False, sentences: bool = False
    ) -> list[Prediction]:
        return self.predict_result(texts, explain=explain, sentences=sentences).predictions

    def model_info(self) -> dict[str, Any]:
        return self._send("GET", "/model").json()

    def health(self) -> dict[str, Any]:
        """The readiness answer, 200 or 503 alike (no retries)."""
        return self._http.get("/health").json()

    def wait_until_ready(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                if self._http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{self.base_url} not ready after {timeout}s")
            time.sleep(interval)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSentimentClient(_ClientBase):
    """asyncio client; safe to share between many concurrent tasks."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retry, headers)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers=self.headers,
            transport=transport,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                pause = self._pause_after(attempt, None, exc)
                if pause is None:
                    raise
            else:
                pause = self._pause_after(attempt, response, None)
                if pause is None:
                    return self._checked(response)
            await asyncio.sleep(pause)
            attempt += 1

    async def predict_result(
        self, texts: str | list[str], *, explain: bool = False, sentences: bool = False
    ) -> PredictResult:
        body = self._predict_body(texts, explain, sentences)
        return _result(await self._send("POST", "/predict", json=body))

    async def predict(
        self, text: str, *, explain: bool = False, sentences: bool = False
    ) -> Prediction:
        return (await self.predict_result(text, explain=explain, sentences=sentences)).predictions[0]

    async def predict_many(
        self, texts: list[str], *, explain: bool = False, sentences: bool = False
    ) -> list[Prediction]:
        return (await self.predict_result(texts, explain=explain, sentences=sentences)).predictions

    async def model_info(self) -> dict[str, Any]:
        return (await self._send("GET", "/model")).json()

    async def health(self) -> dict[str, Any]:
        """The readiness answer, 200 or 503 alike (no retries)."""
        return (await self._http.get("/health")).json()

    async def wait_until_ready(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                if (await self._http.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > end:
                raise TimeoutError(f"{self.base_url} not ready after {timeout}s")
            await asyncio.sleep(interval)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
