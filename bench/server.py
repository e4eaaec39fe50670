"""The real server (`python -m service`, or a peer from bench/peers.py) as a subprocess on a free
loopback port, with the CPU and memory of its whole process tree (workers included) sampled by
psutil. Memory is PSS, the proportional share: pages the workers share (the model, forked
after loading) count once in the sum instead of once per process."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def service_available() -> bool:
    return (REPO / "service" / "__main__.py").is_file()


def service_default(name: str, fallback: Any) -> Any:
    """A setting's default from service.config.Settings (the fallback if it can't be read)."""
    try:
        from service.config import Settings

        return Settings.model_fields[name].default
    except (ImportError, KeyError, AttributeError):
        return fallback


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Startup:
    listening_s: float | None  # process start -> first HTTP answer on /health (any status)
    ready_s: float  # process start -> /health 200


@dataclass
class Server:
    """Start with `with Server(...) as server:`; `server.startup` holds the start-up timing."""

    model_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    ready_timeout_s: float = 120.0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    startup: Startup | None = None
    repo: Path = REPO  # the checkout whose `service` runs (bench.ab compares two)
    peer: str | None = None  # a setting of bench/peers.py (e.g. "litserve/2") instead of the service

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> Startup:
        self.port = free_port()
        env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(self.port),
            "MODEL_DIR": str(self.model_dir),
            **self.env,
        }
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        start = time.perf_counter()
        command = [sys.executable, "-m", "service"]
        if self.peer is not None:
            kind, _, workers = self.peer.partition("/")  # e.g. "litserve/2": 2 workers
            command = [sys.executable, "-m", "bench.peers", kind, "--port", str(self.port)]
            command += ["--model-dir", str(self.model_dir), "--workers", workers or "0"]
        self.proc = subprocess.Popen(command, cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.startup = self._wait_ready(start)
        logger.info(
            "server pid %d on :%d ready in %.2f s (%s)",
            self.pid,
            self.port,
            self.startup.ready_s,
            " ".join(f"{k}={v}" for k, v in self.env.items()) or "defaults",
        )
        return self.startup

    def _wait_ready(self, start: float) -> Startup:
        listening = None
        while time.perf_counter() - start < self.ready_timeout_s:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before ready; log: {self.log_path}"
                )
            try:
                status, _ = http_get(self.port, "/health", timeout=1.0)
            except OSError:
                time.sleep(0.01)
                continue
            now = time.perf_counter() - start
            listening = listening if listening is not None else now
            if status == 200:
                return Startup(round(listening, 3), round(now, 3))
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"server not ready within {self.ready_timeout_s} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.pid).children(recursive=True)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # A peer's helper processes may outlive its main one; ours exit with the supervisor.
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def rss_bytes(self) -> int:
        """Memory of the whole process tree (sum of PSS)."""
        return tree_memory(psutil.Process(self.pid))

    def metrics_text(self) -> str:
        status, body = http_get(self.port, "/metrics", timeout=5.0)
        return body.decode("utf-8", "replace") if status == 200 else ""


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def tree_memory(process: psutil.Process) -> int:
    total = 0
    for member in _tree(process):
        with contextlib.suppress(psutil.Error):
            info = member.memory_full_info()
            total += int(getattr(info, "pss", info.rss))
    return total


def tree_cpu(process: psutil.Process) -> dict[int, float]:
    """CPU seconds so far of each live process of the tree, by pid."""
    out = {}
    for member in _tree(process):
        with contextlib.suppress(psutil.Error):
            t = member.cpu_times()
            out[member.pid] = float(t.user + t.system)
    return out


class Sampler:
    """CPU seconds (user+system) and peak memory (PSS) of a process tree over a window."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start: dict[int, float] = {}
        self._t0 = 0.0
        self.cpu_s = 0.0
        self.wall_s = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_rss()

    def _sample_rss(self) -> None:
        self.peak_rss = max(self.peak_rss, tree_memory(self.process))

    def __enter__(self) -> Sampler:
        self._cpu_start, self._t0 = tree_cpu(self.process), time.perf_counter()
        self._sample_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_rss()
        end = tree_cpu(self.process)
        # Processes present at both ends (a worker replaced meanwhile would count from 0).
        self.cpu_s = sum(end[pid] - self._cpu_start.get(pid, 0.0) for pid in end)
        self.wall_s = time.perf_counter() - self._t0

    def as_dict(self) -> dict[str, float]:
        return {
            "server_cpu_s": round(self.cpu_s, 3),
            "server_cores_busy": round(self.cpu_s / self.wall_s, 3) if self.wall_s else 0.0,
            "server_peak_rss_mb": round(self.peak_rss / 2**20, 1),
        }
