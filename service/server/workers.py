"""Several worker processes on one port: a pre-fork supervisor.

The supervisor (the process `python -m service` starts) loads the checkpoint once, binds one
listening socket per worker on the same port (SO_REUSEPORT), then forks WORKERS children. Each
child is a complete single-process server (its own event loop, inference thread, batcher and
drain logic) accepting from its own socket; the model's weights stay in pages the children
share copy-on-write. The kernel spreads connections evenly over the sockets (one shared socket
let whichever worker woke first take most of them: 56 of 64 keep-alive connections in one
try), and the supervisor keeps each socket open, so connections that arrive while a worker is
being replaced wait for its successor instead of being refused.

* Readiness: every worker writes its status into a small shared-memory board, and each one's
  /health is 200 only while every slot says "ok" -- or "replacing": a worker started in place
  of a dead one. A replacement takes no connection until its model is warm (its app holds
  uvicorn's start-up until then: service/app/factory.py), so the connections that reach its socket
  meanwhile wait there instead of getting 503 not_ready, and the pod stays listed.
* SIGTERM/SIGINT: forwarded as SIGTERM to every worker, each of which drains as a single
  process would; the supervisor exits once all have, with the first non-zero status.
* A worker that dies is logged and replaced (a fresh fork of the supervisor, which never ran
  the model). Up to MAX_CRASHES deaths within CRASH_WINDOW_S are replaced at once; beyond,
  each replacement waits a back-off (1 s, doubling, at most BACKOFF_MAX_S) during which the
  slot says "backoff", so /health is 503 and the pod leaves the Service but stays up, its
  other workers answering and its logs and /metrics readable; a quiet CRASH_WINDOW_S resets
  it. A worker whose start-up failed (a deterministic failure: the same checkpoint and code
  would fail again) ends the whole server instead.
* Metrics: the supervisor creates PROMETHEUS_MULTIPROC_DIR before prometheus_client is
  imported anywhere, tells the library when a worker dies, and removes the directory at exit.
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from service.config import MULTIPROC_ENV

logger = logging.getLogger("service.workers")

STATUS_CODES = {"loading": 0, "ok": 1, "draining": 2, "failed": 3, "replacing": 4, "backoff": 5}
# Slots that let /health say ready: a replacement loads while the other workers serve.
READY_CODES = frozenset({STATUS_CODES["ok"], STATUS_CODES["replacing"]})
# Exit status of a worker whose start-up failed (service.server.launch.EXIT_START_FAILED).
START_FAILED = 4
# More deaths than this within CRASH_WINDOW_S: replace after a back-off, not at once.
MAX_CRASHES = 5
CRASH_WINDOW_S = 60.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
FORWARDED = (signal.SIGTERM, signal.SIGINT)


class WorkerBoard:
    """One status byte per worker in anonymous shared memory (created before forking, so
    every worker sees every other's writes)."""

    def __init__(self, workers: int) -> None:
        self.size = workers
        self._memory = mmap.mmap(-1, workers)  # MAP_SHARED: survives fork as one page

    def set(self, index: int, status: str) -> None:
        self._memory[index] = STATUS_CODES[status]

    def ready(self) -> int:
        """How many workers report "ok" or are being replaced."""
        return sum(1 for code in self._memory[: self.size] if code in READY_CODES)

    def count(self, status: str) -> int:
        code = STATUS_CODES[status]
        return sum(1 for value in self._memory[: self.size] if value == code)

    def slot(self, index: int, replacement: bool = False) -> WorkerSlot:
        return WorkerSlot(self, index, replacement)


class WorkerSlot:
    """What one worker's runtime sees of the board: its own slot to write, everyone to read.
    `replacement`: started in place of a dead worker, so it loads as "replacing"."""

    def __init__(self, board: WorkerBoard, index: int, replacement: bool = False) -> None:
        self.board = board
        self.index = index
        self.replacement = replacement

    def report(self, status: str) -> None:
        if status == "loading" and self.replacement:
            status = "replacing"
        self.board.set(self.index, status)

    def all_ready(self) -> bool:
        return self.board.ready() == self.board.size

    def describe(self) -> str:
        text = f"{self.board.ready()} of {self.board.size} workers ready"
        waiting = self.board.count("backoff")
        if waiting:
            text += f"; {waiting} restarting after repeated crashes (back-off)"
        return text


@contextmanager
def multiprocess_metrics_dir() -> Iterator[Path]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this server's lifetime (must be entered before
    prometheus_client is imported: it picks its value storage at import)."""
    path = Path(tempfile.mkdtemp(prefix="sentiment-metrics-"))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


WorkerMain = Callable[[int, WorkerSlot], int]


class Supervisor:
    """Forks `workers` children running `worker_main(index, slot)` (which returns the exit
    status), keeps them running, forwards termination and collects their statuses."""

    def __init__(
        self, workers: int, worker_main: WorkerMain, listeners: list[socket.socket] | None = None
    ) -> None:
        self.workers = workers
        self.worker_main = worker_main
        # Closed once stopping (no more workers to fork): with the workers' copies closed as
        # they drain, the port then refuses new connections instead of queueing them unserved.
        # Also replaced in place while a worker backs off (see _back_off): a forked worker
        # finds its socket in this list, so it must stay the list `worker_main` was built with.
        self.listeners = listeners if listeners is not None else []
        self._addresses = [(sock.family, sock.getsockname()) for sock in self.listeners]
        self.board = WorkerBoard(workers)
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.exit_code = 0
        self._crashes: list[float] = []
        self._due: dict[int, float] = {}  # worker index -> when its back-off ends (monotonic)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        try:
            # Objects alive now (the loaded model among them) move to a generation the
            # collector never scans, so no child dirties their pages by collecting them.
            gc.freeze()
            for index in range(self.workers):
                self._spawn(index)
            while self.children or (self._due and not self.stopping):
                if self._due and not self.stopping:
                    self._wait_backing_off()
                else:
                    self._reap_one()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("received %s: draining %d workers", signal.Signals(sig).name, len(self.children))
        self._stop()
        # Workers ignore SIGINT (a terminal's Ctrl+C reaches the whole process group), so
        # each gets exactly the signals the supervisor got, as SIGTERM.
        self._signal_children(signal.SIGTERM)

    def _signal_children(self, sig: int) -> None:
        for pid in list(self.children):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_backing_off(self) -> None:
        """Reap what dies and start the replacements whose back-off is over, polling (a
        blocking wait would not wake when a back-off ends)."""
        pid, status = os.waitpid(-1, os.WNOHANG) if self.children else (0, 0)
        if pid:
            self._reaped(pid, status)
            return
        now = time.monotonic()
        for index, due in sorted(self._due.items()):
            if due <= now:
                del self._due[index]
                try:
                    self._reopen(index)
                except OSError as exc:  # the port taken meanwhile: try again after a back-off
                    logger.error("worker %d: cannot listen again: %s", index, exc)
                    self._due[index] = now + BACKOFF_MAX_S
                    continue
                self._spawn(index, replacement=True)
        if self._due:
            time.sleep(min(0.05, max(0.0, min(self._due.values()) - now)))

    def _spawn(self, index: int, replacement: bool = False) -> None:
        self.board.slot(index, replacement).report("loading")
        # Signals stay blocked across fork until the child's server has its handlers in place,
        # so a SIGTERM arriving meanwhile is delivered to the right code, not lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child process
                for sig in FORWARDED:
                    signal.signal(sig, signal.SIG_DFL)
                code = 1
                try:
                    code = self.worker_main(index, self.board.slot(index, replacement))
                except BaseException:
                    logger.exception("worker %d crashed", index)
                finally:
                    os._exit(code)
            # Known before a pending signal is let in, so the handler signals this child too.
            self.children[pid] = index
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        logger.info("worker %d started", index, extra={"pid": pid, "replacement": replacement})

    def _reap_one(self) -> None:
        pid, status = os.waitpid(-1, 0)
        self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        index = self.children.pop(pid, None)
        if index is None:
            return
        code = os.waitstatus_to_exitcode(status)
        _mark_metrics_dead(pid)
        if self.stopping:
            if code != 0:
                logger.warning("worker %d exited with status %d", index, code, extra={"pid": pid})
                self.exit_code = self.exit_code or _as_status(code)
            return
        if code == START_FAILED:
            logger.critical("worker %d failed to start; stopping the server", index)
            self._give_up(START_FAILED)
            return
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < CRASH_WINDOW_S] + [now]
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
        delay = backoff_s(len(self._crashes))
        if delay:
            logger.critical(
                "worker %d died (%s); %d deaths within %.0fs: replacing it in %.0fs, "
                "not ready meanwhile",
                index, how, len(self._crashes), CRASH_WINDOW_S, delay, extra={"pid": pid},
            )
            self._back_off(index, now + delay)
            return
        logger.error("worker %d died (%s); replacing it", index, how, extra={"pid": pid})
        self._spawn(index, replacement=True)

    def _back_off(self, index: int, due: float) -> None:
        """No worker on this slot until `due`. Its socket is closed meanwhile, so the kernel
        sends new connections (the probes' among them) to the live workers instead of queueing
        them unanswered for the whole back-off; connections already queued in it are reset."""
        self.board.set(index, "backoff")
        self._due[index] = due
        if index < len(self.listeners):
            self.listeners[index].close()

    def _reopen(self, index: int) -> None:
        """A fresh listening socket on the slot's address, for the worker after a back-off."""
        if index >= len(self.listeners) or self.listeners[index].fileno() != -1:
            return
        family, address = self._addresses[index]
        sock = bind_sockets(address[0], address[1], 1, family=family)[0]
        self.listeners[index] = sock

    def _give_up(self, code: int) -> None:
        self._stop()
        self.exit_code = code
        self._signal_children(signal.SIGTERM)

    def _stop(self) -> None:
        self.stopping = True
        self._due.clear()
        for listener in self.listeners:
            listener.close()


def backoff_s(deaths: int) -> float:
    """How long to wait before replacing a worker, given the deaths within CRASH_WINDOW_S
    (this one included): none up to MAX_CRASHES, then 1 s doubling up to BACKOFF_MAX_S."""
    if deaths <= MAX_CRASHES:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (deaths - MAX_CRASHES - 1))


def _as_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N -> 128+N, like a shell


def _mark_metrics_dead(pid: int) -> None:
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    # Drops the dead worker's "live" gauges (in flight, queue depth, ready); its counters
    # and histograms stay, so totals never go backwards.
    multiprocess.mark_process_dead(pid)


def bind_sockets(
    host: str, port: int, count: int, backlog: int = 2048, family: int | None = None
) -> list[socket.socket]:
    """`count` listening sockets on one port (port 0: the first one picks it), one per worker."""
    if family is None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
