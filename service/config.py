"""Service settings: one pydantic-settings class read from the environment, validated at start."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where prometheus_client keeps each worker's values in multiprocess mode; the supervisor sets it
# before prometheus_client is imported (it picks its value storage at import).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (v2
    `cpu.max` or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`), rounded up, at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup quota, or None when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # v2: "max 100000" or "150000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


class Settings(BaseSettings):
    """Environment variables (upper-case field names, e.g. MAX_BATCH_SIZE=32)."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, protected_namespaces=()
    )

    model_dir: Path | None = Field(
        default=None, description="Checkpoint directory; unset = artifacts/review-sentiment."
    )
    host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface to bind (0.0.0.0 in containers)."
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0 = any free port).")

    workers: int = Field(
        default_factory=available_cpus,
        ge=1,
        le=256,
        description="Server processes on the port (default: the CPUs this process may use, "
        "by affinity and cgroup quota).",
    )

    max_batch_size: int = Field(default=16, ge=1, le=1024, description="Reviews per model call.")
    max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="Longest a review waits for batch-mates while more are arriving.",
    )
    inline_max_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="A lone review from the only client connected to an idle worker is scored "
        "at once on the event loop (no thread hand-offs) when its model call is expected to "
        "take at most this long (0 = always queue).",
    )
    max_queue: int = Field(
        default=512, ge=1, le=1_000_000, description="Reviews waiting for the model; more -> 429."
    )
    max_chars: int = Field(default=20_000, ge=1, description="Characters per review.")
    max_batch: int = Field(default=64, ge=1, description="Reviews per request (`texts`).")
    max_body_bytes: int = Field(default=1 << 20, ge=64, description="Request body limit, bytes.")
    request_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="Deadline of a /predict request, from arrival."
    )
    body_timeout_s: float = Field(
        default=5.0, gt=0, le=3600, description="Deadline for receiving the body (slow -> 408)."
    )
    max_header_bytes: int = Field(
        default=65536,
        ge=1024,
        le=16 << 20,
        description="Request line + headers limit, bytes (beyond -> 431, never read whole).",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Open connections; a request beyond gets 503 (raise RLIMIT_NOFILE to fit); "
        "the probes /health and /health/live are answered beyond it (then the connection closes).",
    )
    write_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A connection whose answers are not read (the send buffer stays full) for "
        "this long is closed.",
    )
    torch_threads: int = Field(
        default=1, ge=0, le=256, description="torch intra-op threads (0 = torch's default)."
    )

    # model.predictor.Backend, written out: importing it would load torch before a bad setting
    # could be reported (tests/service/test_config.py keeps the two equal).
    inference_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="What scores reviews: ONNX Runtime (faster) or PyTorch (same answers, 1e-5).",
    )

    # model.language.Policy, written out like INFERENCE_BACKEND (a test keeps the two equal).
    unsupported_text: Literal["flag", "refuse", "score"] = Field(
        default="flag",
        description="A text the model cannot read (another language, or too few words it "
        "knows): flag = answer with `readable: false` and the label, confidence and "
        "probabilities withheld (null); refuse = the same plus a per-item `error` in a batch, "
        "and 422 `unsupported_text` for a single `text`; score = score it anyway, flagged "
        "`readable: false`.",
    )

    switch_interval_ms: float = Field(
        default=0.1,
        ge=0.01,
        le=100,
        description="Python's GIL switch interval (the default 5 ms starves the inference thread).",
    )

    max_explain_texts: int = Field(default=8, ge=1, description="Reviews explained per request.")
    max_explain_tokens: int = Field(
        default=400, ge=1, description="Tokens explained per review (head+tail kept beyond)."
    )

    max_sentences: int = Field(
        default=256,
        ge=1,
        description="Sentences per request with `sentences: true` (all texts together); each "
        "is one more item in the queue, so at most MAX_QUEUE minus the request's texts.",
    )

    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, /predict, /model and /metrics need `Authorization: Bearer`.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without the API key even when API_KEY is set (for a "
        "scraper inside the cluster that holds no key); the counts include other clients' traffic.",
    )

    drain_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="After SIGTERM, keep serving this long while /health says draining.",
    )
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest wait for in-flight requests at exit."
    )

    @field_validator("log_level", "log_format", "inference_backend", "unsupported_text", mode="before")
    @classmethod
    def _fold_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if value.upper() in get_args(LogLevel) else value.lower()

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        # API_KEY="" in a compose file or a chart means "no key", not "an empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.max_batch > self.max_queue:
            raise ValueError(
                f"MAX_BATCH ({self.max_batch}) must not exceed MAX_QUEUE ({self.max_queue}): "
                "a full-size request could never be queued"
            )
        if self.body_timeout_s > self.request_timeout_s:
            raise ValueError("BODY_TIMEOUT_S must not exceed REQUEST_TIMEOUT_S")
        return self


def describe_error(exc: ValidationError) -> str:
    """One line naming every bad variable, for the start-up failure message."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in error["loc"]).upper()
        parts.append(f"{name}: {error['msg']}" if name else str(error["msg"]))
    return "invalid configuration: " + "; ".join(parts)
