"""Settings: environment variables, defaults and validation."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from service.config import Settings, describe_error


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set what they need; nothing from the outer environment leaks in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.model_dir is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_batch_size >= 1 and settings.max_queue >= settings.max_batch
    assert settings.api_key is None
    assert settings.log_format == "json"


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "MODEL_DIR": str(tmp_path),
        "HOST": "0.0.0.0",
        "PORT": "9001",
        "MAX_BATCH_SIZE": "16",
        "MAX_WAIT_MS": "2.5",
        "MAX_QUEUE": "100",
        "MAX_CHARS": "500",
        "MAX_BATCH": "10",
        "MAX_BODY_BYTES": "65536",
        "REQUEST_TIMEOUT_S": "3",
        "BODY_TIMEOUT_S": "1",
        "TORCH_THREADS": "2",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "TEXT",
        "API_KEY": "s3cret",
        "MAX_EXPLAIN_TEXTS": "2",
        "MAX_EXPLAIN_TOKENS": "50",
        "SWITCH_INTERVAL_MS": "0.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.model_dir == tmp_path and s.host == "0.0.0.0" and s.port == 9001
    assert (s.max_batch_size, s.max_wait_ms, s.max_queue) == (16, 2.5, 100)
    assert (s.max_chars, s.max_batch, s.max_body_bytes) == (500, 10, 65536)
    assert (s.request_timeout_s, s.body_timeout_s, s.torch_threads) == (3, 1, 2)
    assert (s.log_level, s.log_format) == ("DEBUG", "text")
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert (s.max_explain_texts, s.max_explain_tokens) == (2, 50)
    assert s.switch_interval_ms == 0.5


def test_empty_api_key_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "  ")
    assert Settings().api_key is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PORT": "http"}, ["PORT"]),
        ({"PORT": "70000"}, ["PORT"]),
        ({"MAX_BATCH_SIZE": "0"}, ["MAX_BATCH_SIZE"]),
        ({"MAX_WAIT_MS": "-1"}, ["MAX_WAIT_MS"]),
        ({"LOG_FORMAT": "xml", "LOG_LEVEL": "loud"}, ["LOG_FORMAT", "LOG_LEVEL"]),
        ({"MAX_BATCH": "100", "MAX_QUEUE": "10"}, ["MAX_QUEUE"]),
        ({"BODY_TIMEOUT_S": "20", "REQUEST_TIMEOUT_S": "10"}, ["BODY_TIMEOUT_S"]),
    ],
)
def test_bad_values_are_refused_with_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    line = describe_error(info.value)
    assert "\n" not in line and line.startswith("invalid configuration: ")
    for name in names:
        assert name in line


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1


def test_the_backend_setting_offers_the_predictors_backends() -> None:
    from model.predictor import BACKENDS

    annotation = Settings.model_fields["inference_backend"].annotation
    assert get_args(annotation) == BACKENDS
