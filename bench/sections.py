"""The served sections: load levels against the real server, generator choice, explain cost,
start-up, batching policies and the profile. Each returns plain dicts for the results JSON."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import profile, scrape
from bench.load import run_load
from bench.server import Sampler, Server

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    max_batch_size: int
    max_wait_ms: float
    torch_threads: int

    @classmethod
    def parse(cls, text: str) -> Policy:
        """ "BATCH:WAIT_MS:THREADS", e.g. "32:5:1"."""
        batch, wait, threads = text.split(":")
        return cls(int(batch), float(wait), int(threads))

    @property
    def name(self) -> str:
        return f"batch={self.max_batch_size} wait={self.max_wait_ms:g}ms threads={self.torch_threads}"

    def env(self) -> dict[str, str]:
        return {
            "MAX_BATCH_SIZE": str(self.max_batch_size),
            "MAX_WAIT_MS": f"{self.max_wait_ms:g}",
            "TORCH_THREADS": str(self.torch_threads),
        }


@dataclass
class Timing:
    """How long each kind of run lasts (seconds)."""

    level: float = 12.0
    warmup: float = 2.0
    policy_level: float = 8.0
    policy_warmup: float = 1.5
    explain: float = 8.0
    health: float = 4.0
    profile: float = 12.0


def measure_level(
    server: Server,
    generator: str,
    bodies: Path | None,
    concurrency: int,
    seconds: float,
    warmup: float,
    path: str = "/predict",
) -> dict[str, Any]:
    """Warm up, then one measured run: client figures, server CPU/RSS, server histogram deltas."""
    if warmup > 0:
        run_load(generator, server.url, bodies, concurrency, warmup, path=path)
    before = server.metrics_text()
    with Sampler(server.pid) as sampler:
        result = run_load(generator, server.url, bodies, concurrency, seconds, path=path)
    deltas = scrape.delta(before, server.metrics_text())
    row: dict[str, Any] = {**result.as_dict(), **sampler.as_dict()}
    answered = max(1, result.requests + result.errors)
    row["server_cpu_ms_per_request"] = round(1e3 * sampler.cpu_s / answered, 3)
    row["server_histograms"] = scrape.by_role(deltas)
    logger.info(
        "c=%d %s: %.1f req/s p50 %.2f ms p99 %.2f ms errors %d, server %.2f cores, gen %.2f s CPU",
        concurrency,
        path,
        result.throughput_rps,
        result.latency_ms["p50"],
        result.latency_ms["p99"],
        result.errors,
        sampler.as_dict()["server_cores_busy"],
        result.generator_cpu_s,
    )
    return row


def idle_rss_mb(server: Server, settle_s: float = 1.0) -> float:
    time.sleep(settle_s)
    return round(server.rss_bytes() / 2**20, 1)


def sweep(
    server: Server, generator: str, bodies: Path, levels: Sequence[int], seconds: float, warmup: float
) -> list[dict[str, Any]]:
    return [measure_level(server, generator, bodies, c, seconds, warmup) for c in levels]


def explain_cost(
    server: Server, generator: str, plain: Path, explained: Path, seconds: float, warmup: float
) -> dict[str, Any]:
    """The same typical reviews at concurrency 1, with and without "explain": true."""
    rows = {
        name: measure_level(server, generator, bodies, 1, seconds, warmup)
        for name, bodies in (("plain", plain), ("explain", explained))
    }
    p50 = {k: float(v["latency_ms"]["p50"]) for k, v in rows.items()}
    cpu = {k: float(v["server_cpu_ms_per_request"]) for k, v in rows.items()}
    return {
        "concurrency": 1,
        "plain": rows["plain"],
        "explain": rows["explain"],
        "p50_ratio": round(p50["explain"] / p50["plain"], 2) if p50["plain"] else None,
        "extra_ms_p50": round(p50["explain"] - p50["plain"], 3),
        "cpu_ratio": round(cpu["explain"] / cpu["plain"], 2) if cpu["plain"] else None,
    }


def sentence_cost(
    server: Server, generator: str, plain: Path, sentences: Path, seconds: float, warmup: float
) -> dict[str, Any]:
    """The same 20-sentence reviews at concurrency 1, with and without "sentences": true: the
    server process's CPU per request (the issue's bound is a ratio of at most 1.5)."""
    rows = {
        name: measure_level(server, generator, bodies, 1, seconds, warmup)
        for name, bodies in (("plain", plain), ("sentences", sentences))
    }
    cpu = {k: float(v["server_cpu_ms_per_request"]) for k, v in rows.items()}
    p50 = {k: float(v["latency_ms"]["p50"]) for k, v in rows.items()}
    return {
        "concurrency": 1,
        "plain": rows["plain"],
        "sentences": rows["sentences"],
        "cpu_ratio": round(cpu["sentences"] / cpu["plain"], 2) if cpu["plain"] else None,
        "p50_ratio": round(p50["sentences"] / p50["plain"], 2) if p50["plain"] else None,
    }


def profile_under_load(
    server: Server,
    generator: str,
    bodies: Path,
    concurrency: int,
    seconds: float,
    scratch: Path,
) -> dict[str, Any]:
    """py-spy record of the server while it serves `concurrency` connections."""
    why_not = profile.check_py_spy(server.pid)
    if why_not:
        logger.warning("no profile: %s", why_not)
        return {"skipped": why_not}
    raw = scratch / "profile.txt"
    run_load(generator, server.url, bodies, concurrency, 1.0)  # warm-up
    spy = profile.start_record(server.pid, seconds, raw)
    with Sampler(server.pid) as sampler:
        load = run_load(generator, server.url, bodies, concurrency, seconds + 1)
    _, err = spy.communicate(timeout=60)
    if spy.returncode != 0 or not raw.exists():
        reason = f"py-spy record failed: {err.decode(errors='replace').strip()[-300:]}"
        logger.warning(reason)
        return {"skipped": reason}
    summary = profile.summarise(raw)
    answered = max(1, load.requests + load.errors)
    cpu_ms = 1e3 * sampler.cpu_s / answered
    summary["concurrency"] = concurrency
    summary["server_cpu_ms_per_request"] = round(cpu_ms, 3)
    summary["throughput_rps_while_profiling"] = load.throughput_rps
    shares = summary["busy_share"]
    assert isinstance(shares, dict)
    summary["cpu_ms_per_request_by_bucket"] = {k: round(cpu_ms * float(v), 3) for k, v in shares.items()}
    return summary


def startup(model_dir: Path, env: dict[str, str], repeats: int, log_path: Path) -> dict[str, Any]:
    """Process start -> /health 200, `repeats` times; idle RSS after each."""
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        with Server(model_dir, env, log_path) as server:
            assert server.startup is not None
            runs.append(
                {
                    "listening_s": server.startup.listening_s,
                    "ready_s": server.startup.ready_s,
                    "idle_rss_mb": idle_rss_mb(server),
                }
            )
    return {
        "runs": runs,
        "ready_s_median": statistics.median(float(r["ready_s"]) for r in runs),
        "idle_rss_mb_median": statistics.median(float(r["idle_rss_mb"]) for r in runs),
    }


def policies(
    model_dir: Path,
    grid: Sequence[Policy],
    generator: str,
    bodies: Path,
    levels: Sequence[int],
    timing: Timing,
    log_path: Path,
    known: dict[Policy, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Each policy's sweep on a fresh server; policies already measured (`known`) are reused."""
    out = []
    for policy in grid:
        if policy in known:
            rows = [r for r in known[policy] if r["concurrency"] in levels]
            out.append({"policy": policy.name, **policy.__dict__, "levels": rows, "reused": True})
            continue
        try:
            with Server(model_dir, policy.env(), log_path) as server:
                rows = sweep(server, generator, bodies, levels, timing.policy_level, timing.policy_warmup)
        except RuntimeError as exc:
            logger.error("policy %s failed: %s", policy.name, exc)
            out.append({"policy": policy.name, **policy.__dict__, "levels": [], "error": str(exc)})
            continue
        out.append({"policy": policy.name, **policy.__dict__, "levels": rows})
    return out
