"""Load generators, each run as its own process so its CPU can be measured apart from the server's.

- wrk (Debian package `wrk`) with bench/wrk_rotate.lua: C, epoll, one thread. Every latency and
  throughput figure comes from it (`figures_generator`): a Python client on the same two cores
  takes CPU from the server it measures, and more from some servers than others;
- "asyncio": a minimal keep-alive HTTP/1.1 client on asyncio (uvloop when installed), this module;
- "httpx": httpx.AsyncClient, this module. The Python clients are for checks (`--smoke`, soak,
  tests), where wrk may be missing.

Closed loop: `concurrency` connections, each sending its next request as soon as the previous
answer arrives, rotating through real request bodies. Bounded by time (and by count for the
Python clients). `python -m bench.load --help` runs the Python ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PY_KINDS = ("asyncio", "httpx")
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_rotate.lua"
# What a broken, reset or timed-out connection raises; counted per kind, never fatal.
CONNECTION_ERRORS = (
    OSError,
    ValueError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
)
REQUEST_TIMEOUT_S = 30.0


@dataclass
class LoadResult:
    generator: str
    concurrency: int
    duration_s: float
    requests: int  # 2xx answers
    errors: int  # non-2xx answers, connection errors and timeouts
    throughput_rps: float  # 2xx answers per second
    latency_ms: dict[str, float]  # p50 p95 p99 mean max, over all answers
    error_detail: dict[str, int] = field(default_factory=dict)
    generator_cpu_s: float = 0.0  # user+system CPU of the generator while it sent load
    generator_process_cpu_s: float = 0.0  # the whole process, start-up (imports) included

    @property
    def generator_cpu_ms_per_request(self) -> float:
        return 1e3 * self.generator_cpu_s / max(1, self.requests + self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "generator_cpu_ms_per_request": round(self.generator_cpu_ms_per_request, 4)}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


WRK_MISSING = "wrk (the C load generator) is not installed: apt-get install wrk (make bench installs it)"


def figures_generator() -> str:
    """The generator for figures that get reported: wrk, or an error that says how to get it."""
    if not wrk_available():
        raise RuntimeError(WRK_MISSING)
    return "wrk"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_load(
    kind: str,
    url: str,
    bodies: Path | None,
    concurrency: int,
    duration_s: float,
    max_requests: int = 10_000_000,
    path: str = "/predict",
) -> LoadResult:
    """One load run in a child process; its CPU is the RUSAGE_CHILDREN delta (runs are sequential)."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        out = Path(tmp) / "result.json"
        cpu0 = _children_cpu()
        if kind == "wrk":
            result = _run_wrk(url + path, bodies, concurrency, duration_s, out)
        else:
            cmd = [
                sys.executable,
                "-m",
                "bench.load",
                "--client",
                kind,
                "--url",
                url + path,
                "--concurrency",
                str(concurrency),
                "--duration",
                str(duration_s),
                "--max-requests",
                str(max_requests),
                "--out",
                str(out),
            ]
            if bodies is not None:
                cmd += ["--bodies", str(bodies)]
            subprocess.run(
                cmd, check=True, timeout=duration_s + 120, cwd=Path(__file__).resolve().parent.parent
            )
            result = LoadResult(**json.loads(out.read_text()))
        result.generator_process_cpu_s = round(_children_cpu() - cpu0, 3)
        if kind == "wrk":  # C: start-up is negligible; the Python clients report their load window
            result.generator_cpu_s = result.generator_process_cpu_s
        return result


def _run_wrk(url: str, bodies: Path | None, concurrency: int, duration_s: float, out: Path) -> LoadResult:
    env = {
        **os.environ,
        "BENCH_WRK_OUT": str(out),
        "BENCH_BODIES": str(bodies or ""),
        "BENCH_METHOD": "POST" if bodies else "GET",
    }
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={int(REQUEST_TIMEOUT_S)}s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
    raw = json.loads(out.read_text())
    errors = {k: int(v) for k, v in raw["errors"].items() if v}
    seconds = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["errors"]["status"]
    lat = {k: round(v / 1e3, 3) for k, v in raw["latency_us"].items()}
    n_err = sum(errors.values())
    return LoadResult("wrk", concurrency, round(seconds, 3), ok, n_err, round(ok / seconds, 1), lat, errors)


# --- the Python clients (run in the child process) ---------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    sent: int = 0


def _request_bytes(host: str, path: str, body: bytes | None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server closes) after reading one whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = b"close" in value
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif length:
        await reader.readexactly(length)
    return status, close


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(host: str, port: int, deadline: float, tally: _Tally) -> Conn | None:
    """A connection, retried (each failure counted) until the deadline; None if none could be made."""
    while time.perf_counter() < deadline:
        try:
            return await asyncio.open_connection(host, port)
        except OSError as exc:
            tally.statuses[f"connect {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
    return None


async def _asyncio_worker(
    host: str, port: int, requests: list[bytes], start: int, deadline: float, tally: _Tally, limit: int
) -> None:
    conn = await _connect(host, port, deadline, tally)
    i = start
    while conn is not None and time.perf_counter() < deadline and tally.sent < limit:
        reader, writer = conn
        tally.sent += 1
        i = (i + 1) % len(requests)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                writer.write(requests[i])
                status, close = await _read_response(reader)
            tally.statuses[str(status)] += 1
        except CONNECTION_ERRORS as exc:
            tally.statuses[type(exc).__name__] += 1
            close = True
        tally.latencies.append(time.perf_counter() - t0)
        if close:
            writer.close()
            conn = await _connect(host, port, deadline, tally)
    if conn is not None:
        conn[1].close()


async def _httpx_worker(
    client: object,
    url: str,
    bodies: list[bytes | None],
    start: int,
    deadline: float,
    tally: _Tally,
    limit: int,
) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    i = start
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline and tally.sent < limit:
        tally.sent += 1
        i = (i + 1) % len(bodies)
        t0 = time.perf_counter()
        try:
            body = bodies[i]
            if body is None:
                response = await client.get(url)
            else:
                response = await client.post(url, content=body, headers=headers)
            tally.statuses[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            tally.statuses[type(exc).__name__] += 1
        tally.latencies.append(time.perf_counter() - t0)


async def _drive(args: argparse.Namespace, bodies: list[bytes | None]) -> tuple[_Tally, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(args.url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    tally = _Tally()
    step = max(1, len(bodies) // args.concurrency)
    start = time.perf_counter()
    deadline = start + args.duration
    if args.client == "asyncio":
        requests = [_request_bytes(f"{host}:{port}", path, b) for b in bodies]
        await asyncio.gather(
            *(
                _asyncio_worker(host, port, requests, w * step, deadline, tally, args.max_requests)
                for w in range(args.concurrency)
            )
        )
    else:
        import httpx

        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
            await asyncio.gather(
                *(
                    _httpx_worker(client, args.url, bodies, w * step, deadline, tally, args.max_requests)
                    for w in range(args.concurrency)
                )
            )
    return tally, time.perf_counter() - start


def _summarise(args: argparse.Namespace, tally: _Tally, seconds: float) -> LoadResult:
    lat = np.array(tally.latencies or [0.0]) * 1e3
    ok = sum(n for s, n in tally.statuses.items() if s.isdigit() and 200 <= int(s) < 300)
    errors = {s: n for s, n in tally.statuses.items() if not (s.isdigit() and 200 <= int(s) < 300)}
    pct = {f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 95, 99)}
    return LoadResult(
        args.client,
        args.concurrency,
        round(seconds, 3),
        ok,
        sum(errors.values()),
        round(ok / seconds, 1),
        {**pct, "mean": round(float(lat.mean()), 3), "max": round(float(lat.max()), 3)},
        errors,
    )


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.load", description="Closed-loop HTTP load (Python clients)."
    )
    p.add_argument("--client", choices=PY_KINDS, default="asyncio")
    p.add_argument("--url", required=True, help="full URL, e.g. http://127.0.0.1:8000/predict")
    p.add_argument("--bodies", type=Path, help="JSON request bodies, one per line (none: GET)")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0, help="seconds")
    p.add_argument("--max-requests", type=int, default=10_000_000)
    p.add_argument("--out", type=Path, help="write the JSON result here (default: stdout)")
    args = p.parse_args(argv)
    bodies: list[bytes | None] = (
        [line.rstrip(b"\n") for line in args.bodies.read_bytes().splitlines() if line.strip()]
        if args.bodies
        else [None]
    )
    cpu0 = _self_cpu()
    with _event_loop_runner() as runner:
        tally, seconds = runner.run(_drive(args, bodies))
    result = _summarise(args, tally, seconds)
    result.generator_cpu_s = round(_self_cpu() - cpu0, 3)
    text = json.dumps(asdict(result))
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
