"""`python -m bench.attacks [--repo DIR]`: the attacks of issue 18 (hardening, round 3) against a
real server started from DIR's code (default: this checkout), one figure each, so a fix can be
measured against the code before it (`git archive main | tar -x -C /tmp/before`, then
`--repo /tmp/before`).

* one long word: a 24 KB request of one 8,000-letter ligature word (NFKC: 32,000 letters), and
  one of a 20,000-letter ASCII word, while /health/live is probed: seconds, worker peak memory;
* probes at the cap: MAX_CONNECTIONS=40 held by 120 idle connections, then /health and
  /health/live on fresh connections: status and seconds;
* unread answers: 4 connections pipeline requests for ~16 MB of answers each (/openapi.json)
  and never read them: how long the server holds them (WRITE_TIMEOUT_S=2 where the code knows
  it);
* deadline: REQUEST_TIMEOUT_S=1, 8 concurrent 1 MB requests of the most expensive text shape
  to tokenize: the slowest answer and the statuses;
* a worker killed under load: WORKERS=2, 32 closed-loop clients, one worker SIGKILLed: answers
  by status, transport errors, /health probes that were not 200;
* a crash loop: one worker SIGKILLed 7 times in a row: whether the server stays up, and what
  /health says.

The scenario functions are also what the tests in tests/hardening/ assert on
(test_probes_at_the_cap.py, test_request_deadline.py, test_worker_replacement.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.server import HOST, REPO, Server

logger = logging.getLogger("bench.attacks")

SHIPPED = REPO / "artifacts" / "review-sentiment"
# The text shape that costs the tokenizer most per character (tests/hardening/test_text_costs.py
# measured every shape there: ~8 ms per 20,000 characters, where plain prose costs ~0.3 ms).
EXPENSIVE = "!?" * 10_000
EXPENSIVE_TEXTS = 52  # 52 x 20,000 characters: just under the 1 MiB body limit
PIPELINE_BURST = 16  # requests sent at once by a pipelining client (the server queues 32)


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, float, dict[str, str]]:
    """(status or -1, seconds, headers) of one GET on a fresh connection."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, time.monotonic() - started, headers
    except OSError:
        return -1, time.monotonic() - started, {}
    finally:
        conn.close()


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that send nothing."""
    held = []
    try:
        for _ in range(count):
            held.append(socket.create_connection((HOST, port), timeout=5))
        yield held
    finally:
        for sock in held:
            sock.close()


def probes_at_the_cap(port: int, cap: int) -> dict[str, Any]:
    """Hold 3x `cap` idle connections; then each probe (and one /predict) on a fresh one."""
    with idle_connections(port, 3 * cap):
        time.sleep(0.3)  # every connection accepted and counted by the server
        found: dict[str, Any] = {}
        for path in ("/health", "/health/live", "/predict"):
            status, seconds, headers = get(port, path)
            found[path] = {
                "status": status,
                "seconds": round(seconds, 3),
                "connection": headers.get("connection"),
            }
    return found


def _pipeline_without_reading(port: int, one: bytes, count: int, stop: threading.Event) -> socket.socket:
    """A connection that sends `count` copies of the request `one` without reading any answer,
    in bursts of PIPELINE_BURST (within what the server lets a connection queue)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((HOST, port))
    sock.settimeout(0.2)
    burst = one * PIPELINE_BURST

    def send() -> None:
        for _ in range(count // PIPELINE_BURST + 1):
            sent = 0
            while sent < len(burst) and not stop.is_set():
                try:
                    sent += sock.send(burst[sent:])
                except TimeoutError:
                    continue  # the server stopped reading (its answers are not being read)
                except OSError:
                    return  # closed by the server
            if stop.wait(0.02):
                return

    threading.Thread(target=send, daemon=True).start()
    return sock


def established(pid: int, port: int) -> int:
    """Connections to `port` the server's process tree holds open."""
    process = psutil.Process(pid)
    count = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            count += sum(
                1
                for c in proc.net_connections("tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            )
    return count


def unread_answers(
    pid: int, port: int, connections: int = 4, limit_s: float = 30.0, path: str = "/openapi.json"
) -> dict[str, Any]:
    """Connections that pipeline requests for `path` (a large answer: the buffers fill without
    much work for the server) and never read: seconds until the server has dropped them all
    (`limit_s` if it still holds them then)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", path)
    answer_bytes = len(conn.getresponse().read()) + 200  # and its head
    conn.close()
    one = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    count = 16_000_000 // answer_bytes + 1  # ~16 MB of answers: more than socket buffers hold
    stop = threading.Event()
    socks = [_pipeline_without_reading(port, one, count, stop) for _ in range(connections)]
    started = time.monotonic()
    try:
        time.sleep(0.5)
        held_at_start = established(pid, port)
        while established(pid, port) > 0 and time.monotonic() - started < limit_s:
            time.sleep(0.2)
        return {
            "connections": connections,
            "held_at_start": held_at_start,
            "held_s": round(time.monotonic() - started, 1),
            "still_held": established(pid, port),
        }
    finally:
        stop.set()
        for sock in socks:
            sock.close()


Posted = tuple[int, float, httpx.Response | None]  # status (-1: no answer), seconds, answer


async def post_all(url: str, body: bytes, clients: int) -> list[Posted]:
    """`body` to POST /predict from `clients` connections at once."""

    async def one() -> Posted:
        async with httpx.AsyncClient(timeout=60) as client:
            started = time.monotonic()
            try:
                response = await client.post(
                    f"{url}/predict", content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError:
                return -1, time.monotonic() - started, None
            return response.status_code, time.monotonic() - started, response

    return list(await asyncio.gather(*(one() for _ in range(clients))))


def error_type(response: httpx.Response | None) -> str | None:
    if response is None:
        return "no answer"
    return response.json().get("error", {}).get("type") if response.status_code != 200 else None


def expensive_body() -> bytes:
    return json.dumps({"texts": [EXPENSIVE] * EXPENSIVE_TEXTS}).encode()


def deadline(url: str, clients: int = 8) -> dict[str, Any]:
    """`clients` concurrent requests of ~1 MB of the costliest text: slowest answer, statuses."""
    results = asyncio.run(post_all(url, expensive_body(), clients))
    return {
        "clients": clients,
        "slowest_s": round(max(seconds for _, seconds, _ in results), 2),
        "statuses": dict(
            Counter(f"{status} {error_type(answer) or ''}".strip() for status, _, answer in results)
        ),
    }


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def one_long_word(url: str, pid: int, word: str) -> dict[str, Any]:
    """One /predict of a single long word (WORKERS=1: `pid` is the worker) while /health/live
    is probed with a 1 s timeout: seconds, worker peak memory growth, probes that failed."""
    before = psutil.Process(pid).memory_info().rss

    async def run() -> tuple[float, int, int]:
        failed = probes = 0
        done = asyncio.Event()

        async def probe() -> None:
            nonlocal failed, probes
            async with httpx.AsyncClient(base_url=url, timeout=1.0) as client:
                while not done.is_set():
                    probes += 1
                    try:
                        if (await client.get("/health/live")).status_code != 200:
                            failed += 1
                    except httpx.TransportError:
                        failed += 1
                    await asyncio.sleep(0.1)

        async def post() -> float:
            async with httpx.AsyncClient(timeout=60) as client:
                started = time.monotonic()
                await client.post(f"{url}/predict", json={"text": word})
                seconds = time.monotonic() - started
            done.set()
            return seconds

        seconds, _ = await asyncio.gather(post(), probe())
        return seconds, failed, probes

    seconds, failed, probes = asyncio.run(run())
    return {
        "seconds": round(seconds, 2),
        "peak_mb_added": round((_peak_rss(pid) - before) / 2**20, 1),
        "probes_failed": f"{failed} of {probes}",
    }


def workers_of(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children()]


async def _kill_under_load(url: str, pid: int, clients: int, seconds: float) -> dict[str, Any]:
    answers: Counter[str] = Counter()
    errors_per_client: Counter[int] = Counter()
    probes: Counter[int] = Counter()
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=4)
    shards = [httpx.AsyncClient(base_url=url, timeout=30, limits=limits) for _ in range(clients // 4)]

    async def client(i: int) -> None:
        n = 0
        while time.monotonic() < end:
            try:
                response = await shards[i % len(shards)].post(
                    "/predict", json={"text": f"review {i} {n}: a fine film, well acted"}
                )
                kind = response.json().get("error", {}).get("type", "") if response.status_code != 200 else ""
                answers[f"{response.status_code} {kind}".strip()] += 1
            except httpx.TransportError:
                answers["transport error"] += 1
                errors_per_client[i] += 1
            n += 1

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=5) as prober:
            while time.monotonic() < end:
                try:
                    probes[(await prober.get("/health")).status_code] += 1
                except httpx.TransportError:
                    probes[-1] += 1
                await asyncio.sleep(0.05)

    async def kill() -> None:
        await asyncio.sleep(seconds / 3)
        os.kill(workers_of(pid)[0], signal.SIGKILL)

    try:
        await asyncio.gather(probe(), kill(), *(client(i) for i in range(clients)))
    finally:
        for shard in shards:
            await shard.aclose()
    return {
        "clients": clients,
        "answers": dict(answers),
        "most_lost_by_one_client": max(errors_per_client.values(), default=0),
        "health": {str(k): v for k, v in probes.items()},
    }


def kill_under_load(url: str, pid: int, clients: int = 32, seconds: float = 6.0) -> dict[str, Any]:
    """SIGKILL one of the workers a third of the way into `seconds` of closed-loop load."""
    return asyncio.run(_kill_under_load(url, pid, clients, seconds))


def health(port: int) -> tuple[int, str]:
    """/health's status (-1: no answer within 2 s) and its error message, on a fresh connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = json.loads(response.read())
        return response.status, str(body.get("error", {}).get("message", ""))
    except (OSError, ValueError):
        return -1, ""
    finally:
        conn.close()


def alive(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def crash_loop(port: int, pid: int, kills: int = 7, wait_s: float = 60.0) -> dict[str, Any]:
    """SIGKILL worker 0's successive replacements `kills` times (each once it has started), then
    wait for the last replacement and for /health 200: what /health said meanwhile, and
    whether the server stayed up."""
    known = set(workers_of(pid))
    victim = sorted(known)[0]
    seen: Counter[str] = Counter()
    messages: set[str] = set()

    def look() -> int:
        status, message = health(port)
        seen[str(status)] += 1
        if message:
            messages.add(message)
        return status

    for kill in range(kills):
        logger.info("crash loop: SIGKILL %d (%d of %d)", victim, kill + 1, kills)
        os.kill(victim, signal.SIGKILL)
        end = time.monotonic() + wait_s
        while time.monotonic() < end:  # the next replacement (after any back-off)
            if not alive(pid):
                return {"kills": kills, "server_alive": False, "health": dict(seen)}
            look()
            new = set(workers_of(pid)) - known
            if new:
                victim = new.pop()
                known.add(victim)
                break
            time.sleep(0.05)
    status = -1
    end = time.monotonic() + wait_s
    while alive(pid) and time.monotonic() < end:
        status = look()
        if status == 200:
            break
        time.sleep(0.05)
    return {
        "kills": kills,
        "server_alive": alive(pid),
        "health": dict(seen),
        "back_off_reported": any("back-off" in m for m in messages),
        "recovered": status == 200,
    }


def run_all(repo: Path, model_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    quiet = {"LOG_LEVEL": "WARNING"}
    with Server(model_dir, {**quiet, "WORKERS": "1"}, repo=repo) as server:
        found["ligature_word"] = one_long_word(server.url, server.pid, "\ufdf2" * 8000)
        found["ascii_word"] = one_long_word(server.url, server.pid, "a" * 20_000)
    with Server(model_dir, {**quiet, "WORKERS": "1", "MAX_CONNECTIONS": "40"}, repo=repo) as server:
        found["probes_at_the_cap"] = probes_at_the_cap(server.port, 40)
    with Server(model_dir, {**quiet, "WORKERS": "1", "WRITE_TIMEOUT_S": "2"}, repo=repo) as server:
        found["unread_answers"] = unread_answers(server.pid, server.port)
    env = {**quiet, "WORKERS": "1", "REQUEST_TIMEOUT_S": "1", "BODY_TIMEOUT_S": "1"}
    with Server(model_dir, env, repo=repo) as server:
        found["deadline"] = deadline(server.url)
    with Server(model_dir, {**quiet, "WORKERS": "2"}, repo=repo) as server:
        found["kill_under_load"] = kill_under_load(server.url, server.pid)
    with Server(model_dir, {**quiet, "WORKERS": "2"}, repo=repo) as server:
        found["crash_loop"] = crash_loop(server.port, server.pid)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose `service` runs")
    parser.add_argument("--model-dir", type=Path, default=SHIPPED)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    found = run_all(args.repo.resolve(), args.model_dir.resolve())
    sys.stdout.write(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
