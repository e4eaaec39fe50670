"""`python -m service`: validate the settings, load the checkpoint, then serve with uvicorn.

A bad setting or checkpoint ends the process with one clear line and a non-zero status before
anything listens. SIGTERM (or Ctrl+C) drains: /health turns 503 "draining", requests already
accepted or queued complete, then the process exits 0.

WORKERS=1 serves in this process; more fork that many workers on one socket (service/server/workers.py),
each one the same single-process server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import threading
from collections.abc import Generator
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError

from service.config import Settings, describe_error
from service.logs import configure_logging, configure_plain_logging
from service.schemas import review_pattern
from service.server.http_guard import guarded_protocol
from service.server.workers import (
    FORWARDED,
    START_FAILED,
    Supervisor,
    WorkerSlot,
    bind_sockets,
    multiprocess_metrics_dir,
)

if TYPE_CHECKING:
    from model.checkpoint import Checkpoint
    from service.runtime.runtime import Runtime

logger = logging.getLogger("service")

EXIT_BAD_SETTINGS = 2
EXIT_BAD_CHECKPOINT = 3
EXIT_START_FAILED = START_FAILED  # also what a worker that failed to start exits with

# Descriptors beyond MAX_CONNECTIONS: the checkpoint, logs, torch's files, the listening socket.
FD_RESERVE = 64
# Never ask for more than this, even where the hard limit is unlimited.
FD_CEILING = 1 << 20


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM/SIGINT drains (optionally after a delay during which
    we keep serving while load balancers notice the failing readiness probe) and the process
    then exits 0 instead of re-raising the signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        runtime: Runtime[Any, Any],
        drain_delay_s: float,
        *,
        worker: bool = False,
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_delay_s = drain_delay_s
        # A forked worker: the supervisor turns Ctrl+C into one SIGTERM per worker, so the
        # SIGINT the terminal also sends to the whole process group is ignored here.
        self.worker = worker
        self._parent = os.getppid()
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        self._loop = asyncio.get_running_loop()
        with super().capture_signals():
            # The supervisor forks with these blocked; one that arrived meanwhile runs now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between any two bytecodes of the main thread, which may hold a
        # lock the drain needs (a metric's: a SIGTERM that landed inside a metric update hung a
        # worker for good). Only hand the signal to the event loop here.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_exit_signal, sig)
        else:
            self._on_exit_signal(sig)

    def _on_exit_signal(self, sig: int) -> None:
        if self.worker and sig == signal.SIGINT:
            return
        self._signals += 1
        if self._signals == 1:
            logger.info("received %s: draining", signal.Signals(sig).name)
            self.runtime.begin_drain()
            if self.drain_delay_s > 0:
                timer = threading.Timer(self.drain_delay_s, self._exit)
                timer.daemon = True
                timer.start()
                return
        elif self._signals > 2:
            self.force_exit = True  # a third signal: stop waiting for in-flight requests
        self._exit()

    def _exit(self) -> None:
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        # An orphaned worker (the supervisor was SIGKILLed) would hold the port forever.
        if self.worker and self._signals == 0 and os.getppid() != self._parent:
            logger.error("service: the supervisor is gone; draining this worker")
            self._on_exit_signal(signal.SIGTERM)
        # A failed start-up (say, the warm-up prediction raised) must not leave a process that
        # is alive but never ready: exit, and let the orchestrator restart or report it.
        if self.runtime.status == "failed" and not self.should_exit:
            logger.critical("service: start-up failed (%s); exiting", self.runtime.failure)
            self.should_exit = True
        return await super().on_tick(counter)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (many systems start at 1,024, below
    a busy server's connection count); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    target = max(soft, ceiling)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("service: cannot raise RLIMIT_NOFILE from %d: %s", soft, exc)
    if soft < wanted:
        logger.warning(
            "service: RLIMIT_NOFILE is %d, below MAX_CONNECTIONS plus a reserve (%d): beyond it "
            "connections are refused by the kernel, not answered with 503",
            soft,
            wanted,
        )
    return soft


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:
        logger.critical("service: %s", describe_error(exc))
        return EXIT_BAD_SETTINGS
    if settings.workers > 1:
        # No logging thread in a process that forks: a child could inherit its locks held.
        configure_plain_logging(settings.log_level, settings.log_format)
        return supervise(settings)
    listener = configure_logging(settings.log_level, settings.log_format)
    try:
        return serve(settings)
    finally:
        listener.stop()


def load(settings: Settings) -> Checkpoint | None:
    """The checkpoint, or None after logging why it can't be loaded."""
    # Imported only now so that a bad setting is reported at once, not after loading torch.
    from model.checkpoint import CheckpointError, load_checkpoint

    try:
        checkpoint = load_checkpoint(settings.model_dir)
    except CheckpointError as exc:
        logger.critical("service: cannot load the checkpoint: %s", exc)
        return None
    # Before forking, so every worker shares them: the spelling lookup and the ONNX libraries,
    # and the check of the ONNX graph against PyTorch, which workers then find done.
    if checkpoint.pipeline.config.spelling:
        checkpoint.pipeline.vocab.prepare_spelling()
    if settings.inference_backend == "onnx":
        from model.onnx_graph import GraphError, preload
        from model.predictor import Predictor

        preload()
        try:
            Predictor(checkpoint)
        except GraphError as exc:
            logger.critical("service: %s", exc)
            return None
    return checkpoint


def serve(
    settings: Settings,
    checkpoint: Checkpoint | None = None,
    sock: socket.socket | None = None,
    slot: WorkerSlot | None = None,
) -> int:
    """One server process: in this process (WORKERS=1), or one forked worker."""
    from service.app.factory import create_app

    if checkpoint is None:
        checkpoint = load(settings)
    if checkpoint is None:
        return EXIT_BAD_CHECKPOINT
    app = create_app(settings, model=checkpoint, slot=slot)
    raise_fd_limit(settings.max_connections + FD_RESERVE)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # ours (configure_logging) applies to uvicorn's loggers too
        access_log=False,  # the middleware writes one richer line per request
        proxy_headers=False,  # client addresses are not used; saves a layer per request
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or 1,
        server_header=False,
        http=guarded_protocol(
            header_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
            write_timeout_s=settings.write_timeout_s,
            on_refusal=app.state.metrics.observe_refusal,
        ),
    )
    server = DrainingServer(config, app.state.runtime, settings.drain_delay_s, worker=slot is not None)
    try:
        server.run(sockets=None if sock is None else [sock])
    except SystemExit:
        # uvicorn exits this way when the app's start-up raised: a replacement worker's failed
        # warm-up (service/app/factory.py), reported below like any failed start.
        if server.runtime.status != "failed":
            raise
    if server.runtime.status == "failed":
        return EXIT_START_FAILED
    return 0 if server.started else 1


def supervise(settings: Settings) -> int:
    """Load once, bind once, fork WORKERS servers (service/server/workers.py)."""
    with multiprocess_metrics_dir():
        from service.runtime.sentiment_model import configure_torch

        # One torch thread in the parent: a thread pool started before fork would be
        # unusable in the children (OpenMP does not survive fork).
        configure_torch(1)
        checkpoint = load(settings)
        if checkpoint is None:
            return EXIT_BAD_CHECKPOINT
        # The schema's readable-text pattern scans every code point through the tokenizer
        # (cached): built once here, every forked worker inherits it instead of rebuilding it.
        review_pattern()
        try:
            sockets = bind_sockets(settings.host, settings.port, settings.workers)
        except OSError as exc:
            logger.critical("service: cannot listen on %s:%d: %s", settings.host, settings.port, exc)
            return EXIT_START_FAILED
        logger.info(
            "serving on http://%s:%d with %d workers",
            settings.host,
            sockets[0].getsockname()[1],
            settings.workers,
        )

        def worker(index: int, slot: WorkerSlot) -> int:
            # Only its own socket: once this worker closes it, nothing else holds it open.
            for other, sock in enumerate(sockets):
                if other != index:
                    sock.close()
            listener = configure_logging(settings.log_level, settings.log_format)
            try:
                return serve(settings, checkpoint, sockets[index], slot)
            finally:
                listener.stop()

        try:
            return Supervisor(settings.workers, worker, listeners=sockets).run()
        finally:
            for sock in sockets:
                sock.close()


if __name__ == "__main__":
    sys.exit(main())
