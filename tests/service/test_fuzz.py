"""Property-based fuzzing of the real server from its own OpenAPI schema (schemathesis): valid
and invalid requests alike must get schema-conformant answers, never a 5xx, and every
non-2xx answer must have the one error shape.

Every check schemathesis has runs (`--checks all`): besides conformance, a schema-valid
request must not be refused (so every limit the server enforces is in the schema) and a
schema-invalid one must not be accepted.

Both ways the server runs: without a key, and with API_KEY set, where every request carries
the key and schemathesis's `ignored_auth` check also sends guarded operations none.

FUZZ_EXAMPLES sets the cases per operation (a few dozen in the normal test run; `make fuzz`
asks for thousands).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
import httpx  # noqa: E402  (after the skip)
from hypothesis import HealthCheck, settings  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from schemathesis.checks import CHECKS, load_all_checks  # noqa: E402

from service.app.factory import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from tests.service.test_e2e import server  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
# Small limits, so that generated bodies run into them (and stay cheap to score); fewer texts
# may be explained than sent, so that the explain limit is exercised too.
# The service's default policy for texts the model cannot read (most generated ones, to the tiny
# checkpoint): their answers, with the label withheld (null), are checked against the schema too.
LIMITS = {"MAX_CHARS": "300", "MAX_BATCH": "8", "MAX_EXPLAIN_TEXTS": "3", "UNSUPPORTED_TEXT": "flag"}
SETTINGS = Settings(max_chars=300, max_batch=8, max_explain_texts=3, unsupported_text="flag")
KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

# The schemas the server will publish, built in-process now (building the app loads nothing),
# since the cases are generated at collection time, before the server runs.
schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi())
keyed_schema = schemathesis.openapi.from_dict(
    create_app(SETTINGS.model_copy(update={"api_key": SecretStr(KEY)})).openapi()
)


@keyed_schema.auth()
class Key:
    """The key, so that cases carry it where the schema asks for it (and negative cases can
    leave it out or spoil it on purpose)."""

    def get(self, case: Any, context: Any) -> str:
        return KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


load_all_checks()
ALL_CHECKS = CHECKS.get_all()


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[str]:
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with server(tiny_checkpoint_dir, log, **LIMITS) as (_, url):
        yield url


@pytest.fixture(scope="module")
def keyed_url(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[str]:
    log = tmp_path_factory.mktemp("fuzz-keyed") / "server.log"
    with server(tiny_checkpoint_dir, log, API_KEY=KEY, **LIMITS) as (_, url):
        yield url


def test_published_schema_is_the_one_fuzzed(live_url: str, keyed_url: str) -> None:
    assert httpx.get(f"{live_url}/openapi.json").json() == schema.raw_schema
    assert httpx.get(f"{keyed_url}/openapi.json").json() == keyed_schema.raw_schema
    assert keyed_schema.raw_schema != schema.raw_schema  # the keyed one declares the key


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_server_conforms_to_its_schema(case: Any, live_url: str) -> None:
    response = case.call(base_url=live_url, timeout=30)
    case.validate_response(response, checks=ALL_CHECKS)
    assert_no_5xx_and_one_error_shape(response)


@keyed_schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_server_with_a_key_conforms_to_its_schema(case: Any, keyed_url: str) -> None:
    response = case.call(base_url=keyed_url, timeout=30)
    case.validate_response(response, checks=ALL_CHECKS)
    if (case.headers or {}).get("Authorization") == AUTH["Authorization"]:
        assert response.status_code != 401, response.text  # the key is taken wherever it is sent
    assert_no_5xx_and_one_error_shape(response)


def assert_no_5xx_and_one_error_shape(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"]
        request_id = response.headers["x-request-id"]
        assert error["request_id"] == (
            request_id[0] if isinstance(request_id, list) else request_id
        )
