"""python -m bench.soak --minutes N [--rate R]: a soak test of the real server.

Starts `python -m service` with the shipped model (artifacts/review-sentiment unless --model-dir),
measures its capacity with a short closed-loop burst (unless --rate is given), then drives steady
OPEN-LOOP load at --utilisation (default 70%) of that capacity for N minutes, with real IMDB
reviews from ../shared/data/aclImdb_train.tar.gz when present (generated text otherwise).

Open loop: request i is due at start + i/R whatever happened before it, and its latency is
counted from when it was due (so a stalled server cannot hide its stall by slowing the client).
Requests go over a bounded pool of keep-alive connections (bench/load.py's minimal HTTP/1.1
client); at most --max-outstanding are in flight, and a request that finds that many is counted
as an error ("client_overflow") rather than sent late.

Each interval (a minute; for runs under 3 minutes, a third of the run, so that the smoke run
still has a first and a last interval) reports count, achieved rate, p50/p99/max latency, errors
and the server's RSS (psutil).

Verdict (exit code 0 only when all hold):
  * zero errors: every request answered 200 within the client timeout;
  * p99 stable: last-interval p99 <= 1.5 x first-interval p99 + 2 ms (the 2 ms absorbs timer
    and scheduler noise when latencies are a few ms);
  * RSS growth < 5% from the end of the first interval (warm: model loaded, buffers grown) to
    the end of the run.

Results go to bench/results/soak.json (--out) and a summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import CONNECTION_ERRORS, _read_response, _request_bytes
from bench.reviews import load_reviews
from bench.server import HOST, REPO, Server, service_default

logger = logging.getLogger("bench.soak")

DEFAULT_DATA = REPO.parent / "shared" / "data" / "aclImdb_train.tar.gz"
DEFAULT_MODEL = REPO / "artifacts" / "review-sentiment"
DEFAULT_OUT = REPO / "bench" / "results" / "soak.json"
CLIENT_TIMEOUT_S = 30.0
P99_RATIO = 1.5
P99_SLACK_S = 0.002
RSS_GROWTH_LIMIT = 0.05
MAX_MINUTES = 24 * 60
# uvicorn closes keep-alive connections idle for 5 s (timeout_keep_alive): never reuse one that old.
MAX_IDLE_S = 2.0


@dataclass
class Record:
    due: float  # seconds since the load started
    latency: float  # from when it was due to the end of the answer
    status: str  # "200", "429", ..., or an exception name


@dataclass
class Run:
    records: list[Record] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)


class Pool:
    """At most `size` keep-alive connections; a request waits for a free one."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        # (reader, writer, when last used): most recently used last
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(size)

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if not self.idle:
            return None
        reader, writer, used = self.idle.pop()
        if time.monotonic() - used > MAX_IDLE_S:  # the newest is stale, so all are: drop them
            writer.close()
            self.close()
            return None
        return reader, writer

    async def send(self, request: bytes) -> str:
        async with self.slots:
            conn = self._take()
            try:
                async with asyncio.timeout(CLIENT_TIMEOUT_S):
                    if conn is None:
                        conn = await asyncio.open_connection(HOST, self.port)
                    reader, writer = conn
                    writer.write(request)
                    status, close = await _read_response(reader)
            except CONNECTION_ERRORS as exc:
                if conn is not None:
                    conn[1].close()
                return type(exc).__name__
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer, time.monotonic()))
            return str(status)

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def measure_capacity(pool: Pool, requests: list[bytes], concurrency: int, seconds: float) -> float:
    """Closed loop: `concurrency` clients back to back for `seconds`; 200 answers per second."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    ok = 0

    async def client(i: int) -> None:
        nonlocal ok
        n = i
        while loop.time() < end:
            if await pool.send(requests[n % len(requests)]) == "200":
                ok += 1
            n += concurrency

    started = loop.time()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return ok / (loop.time() - started)


async def drive(
    server: Server, pool: Pool, requests: list[bytes], rate: float, seconds: float, max_outstanding: int
) -> Run:
    """Open-loop load at `rate` for `seconds`, sampling the server's RSS every second."""
    loop = asyncio.get_running_loop()
    run = Run()
    start = loop.time()
    outstanding: set[asyncio.Task[None]] = set()

    async def one(due: float, request: bytes) -> None:
        status = await pool.send(request)
        run.records.append(Record(due - start, loop.time() - due, status))

    async def sample_rss() -> None:
        while True:
            with contextlib.suppress(Exception):
                run.rss.append((loop.time() - start, server.rss_bytes()))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_rss())
    n = 0
    while (due := start + n / rate) < start + seconds:
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        if len(outstanding) >= max_outstanding:
            run.records.append(Record(due - start, 0.0, "client_overflow"))
        else:
            task = asyncio.create_task(one(due, requests[n % len(requests)]))
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
        n += 1
    if outstanding:
        await asyncio.wait(outstanding, timeout=CLIENT_TIMEOUT_S + 5)
    with contextlib.suppress(Exception):
        run.rss.append((loop.time() - start, server.rss_bytes()))
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    return run


def summarise_interval(index: int, lo: float, hi: float, run: Run) -> dict[str, Any]:
    records = [r for r in run.records if lo <= r.due < hi]
    ok = np.array([r.latency for r in records if r.status == "200"])
    errors: dict[str, int] = {}
    for r in records:
        if r.status != "200":
            errors[r.status] = errors.get(r.status, 0) + 1
    rss = [b for t, b in run.rss if t <= hi]
    return {
        "interval": index,
        "from_s": round(lo, 1),
        "to_s": round(hi, 1),
        "requests": len(records),
        "rate_rps": round(len(records) / (hi - lo), 1),
        "p50_ms": round(float(np.percentile(ok, 50)) * 1000, 2) if ok.size else None,
        "p99_ms": round(float(np.percentile(ok, 99)) * 1000, 2) if ok.size else None,
        "max_ms": round(float(ok.max()) * 1000, 2) if ok.size else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rss_mb": round(rss[-1] / 2**20, 1) if rss else None,
    }


def verdict(intervals: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    first, last = intervals[0], intervals[-1]
    errors = sum(i["errors"] for i in intervals)
    p99_first, p99_last = first["p99_ms"], last["p99_ms"]
    p99_ok = (
        p99_first is not None
        and p99_last is not None
        and p99_last <= P99_RATIO * p99_first + P99_SLACK_S * 1000
    )
    rss_start = next((b for t, b in run.rss if t >= first["to_s"] - 1.0), None)  # end of interval 1
    rss_end = run.rss[-1][1] if run.rss else None
    growth = (rss_end - rss_start) / rss_start if rss_start and rss_end else None
    rss_ok = growth is not None and growth < RSS_GROWTH_LIMIT
    return {
        "zero_errors": errors == 0,
        "errors": errors,
        "p99_stable": p99_ok,
        "p99_first_ms": p99_first,
        "p99_last_ms": p99_last,
        "p99_rule": f"last <= {P99_RATIO} x first + {P99_SLACK_S * 1000:g} ms",
        "rss_stable": rss_ok,
        "rss_start_mb": round(rss_start / 2**20, 1) if rss_start else None,
        "rss_end_mb": round(rss_end / 2**20, 1) if rss_end else None,
        "rss_growth_pct": round(growth * 100, 2) if growth is not None else None,
        "rss_rule": f"growth from the end of interval 1 to the end < {RSS_GROWTH_LIMIT:.0%}",
        "passed": errors == 0 and p99_ok and rss_ok,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the steady load")
    parser.add_argument("--rate", type=float, help="requests/s (default: measured capacity x --utilisation)")
    parser.add_argument("--utilisation", type=float, default=0.7, help="fraction of capacity (default 0.7)")
    parser.add_argument("--probe-s", type=float, default=8.0, help="capacity probe length, seconds")
    parser.add_argument("--probe-concurrency", type=int, default=32)
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections for the soak")
    parser.add_argument("--max-outstanding", type=int, default=1024)
    parser.add_argument(
        "--interval-s", type=float, help="report interval (default 60; a third of short runs)"
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="IMDB archive (generated text if missing)"
    )
    parser.add_argument("--reviews", type=int, default=2000, help="distinct reviews to rotate through")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}]")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    if not 0 < args.utilisation <= 1:
        parser.error("--utilisation must be in (0, 1]")
    return args


async def soak(args: argparse.Namespace, server: Server, texts: list[str]) -> dict[str, Any]:
    host = f"{HOST}:{server.port}"
    requests = [_request_bytes(host, "/predict", json.dumps({"text": t}).encode()) for t in texts]
    capacity = None
    if args.rate is None:
        probe_s = min(args.probe_s, max(2.0, args.minutes * 60 / 5))
        pool = Pool(server.port, args.probe_concurrency)
        try:
            capacity = await measure_capacity(pool, requests, args.probe_concurrency, probe_s)
        finally:
            pool.close()
        if capacity <= 0:
            raise RuntimeError("the capacity probe got no 200 answers")
        rate = capacity * args.utilisation
        print(f"capacity ~{capacity:.0f} req/s over {probe_s:g} s; soaking at {rate:.0f} req/s", flush=True)
        await asyncio.sleep(1.0)  # let the probe's queue drain before the steady load
    else:
        rate = args.rate
        print(f"soaking at {rate:.0f} req/s (given)", flush=True)
    seconds = args.minutes * 60
    pool = Pool(server.port, args.connections)
    try:
        run = await drive(server, pool, requests, rate, seconds, args.max_outstanding)
    finally:
        pool.close()
    interval = args.interval_s or (60.0 if seconds >= 180 else seconds / 3)
    bounds = [*np.arange(0.0, seconds, interval).tolist(), seconds]
    intervals = [
        summarise_interval(i + 1, lo, hi, run)
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
        if hi - lo > 1e-6
    ]
    return {
        "capacity_rps": round(capacity, 1) if capacity is not None else None,
        "target_rps": round(rate, 1),
        "achieved_rps": round(len(run.records) / seconds, 1),
        "interval_s": round(interval, 1),
        "intervals": intervals,
        "verdict": verdict(intervals, run),
    }


def print_summary(result: dict[str, Any]) -> None:
    print(
        f"\n{'int':>3} {'from':>6} {'req':>7} {'rps':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'err':>5} {'RSS MB':>7}"
    )
    for i in result["intervals"]:
        print(
            f"{i['interval']:>3} {i['from_s']:>6} {i['requests']:>7} {i['rate_rps']:>7} "
            f"{i['p50_ms']!s:>8} {i['p99_ms']!s:>8} {i['max_ms']!s:>8} {i['errors']:>5} {i['rss_mb']!s:>7}"
        )
    v = result["verdict"]
    print(
        f"\nerrors: {v['errors']} ({'ok' if v['zero_errors'] else 'FAIL'}); "
        f"p99 {v['p99_first_ms']} -> {v['p99_last_ms']} ms "
        f"({'ok' if v['p99_stable'] else 'FAIL'}: {v['p99_rule']}); "
        f"RSS {v['rss_start_mb']} -> {v['rss_end_mb']} MB, {v['rss_growth_pct']}% "
        f"({'ok' if v['rss_stable'] else 'FAIL'}: {v['rss_rule']})"
    )
    print(f"SOAK {'PASSED' if v['passed'] else 'FAILED'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    max_chars = int(service_default("max_chars", 20_000))
    reviews = load_reviews(args.data if args.data.exists() else None, args.reviews, max_chars=max_chars)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_name(args.out.stem + "-server.log")
    log_path.unlink(missing_ok=True)
    started = time.time()
    with Server(args.model_dir, env={"LOG_LEVEL": "WARNING"}, log_path=log_path) as server:
        result = asyncio.run(soak(args, server, reviews.texts))
        exit_code = server.proc.poll() if server.proc is not None else None
    result = {
        "meta": {
            "started_unix": round(started, 1),
            "minutes": args.minutes,
            "utilisation": args.utilisation if args.rate is None else None,
            "model_dir": str(args.model_dir),
            "reviews": reviews.describe(),
            "server_log": str(log_path),
            "server_died_during_run": exit_code is not None,
        },
        **result,
    }
    if exit_code is not None:
        result["verdict"]["passed"] = False
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"results: {args.out}")
    return 0 if result["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
