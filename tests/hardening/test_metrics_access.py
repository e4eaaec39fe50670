"""/metrics with API_KEY set (issue 18, item 6), against the REAL server: it shows per-label
counts of everyone's requests, so it needs the key like /predict and /model, unless
METRICS_PUBLIC says a keyless scraper may read it. The probes never need the key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import assert_error
from tests.service.test_e2e import server

pytestmark = pytest.mark.slow

KEY = "s3cret-key"


@contextlib.contextmanager
def serving(checkpoint: Path, log: Path, **env: str) -> Iterator[httpx.Client]:
    """A client of a real one-worker server started with `env`."""
    with (
        server(checkpoint, log, WORKERS="1", **env) as (_, url),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def test_metrics_need_the_key_when_one_is_set(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    with serving(tiny_checkpoint_dir, tmp_path / "server.log", API_KEY=KEY) as client:
        response = client.get("/metrics")
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
        keyed = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and "sentiment_http_requests_total" in keyed.text
        for probe in ("/health", "/health/live"):
            assert client.get(probe).status_code == 200


def test_metrics_public_opens_metrics_only(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    env = {"API_KEY": KEY, "METRICS_PUBLIC": "true"}
    with serving(tiny_checkpoint_dir, tmp_path / "server.log", **env) as client:
        assert client.get("/metrics").status_code == 200
        assert_error(client.post("/predict", json={"text": "a fine film"}), 401, "unauthorized")
        assert_error(client.get("/model"), 401, "unauthorized")


def test_without_a_key_metrics_stay_open(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    with serving(tiny_checkpoint_dir, tmp_path / "server.log") as client:
        assert client.get("/metrics").status_code == 200
