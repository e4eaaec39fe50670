"""`python -m service`: validate the settings, load the checkpoint, then serve with uvicorn.

A bad setting or checkpoint ends the process with one clear line and a non-zero status before
anything listens. SIGTERM (or Ctrl+C) drains: /health turns 503 "draining", requests already
accepted or queued complete, then the process exits 0.
"""

from __future__ import annotations

import logging
import resource
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

from service.config import Settings, describe_error
from service.logs import configure_logging
from service.protocol import guarded_protocol

if TYPE_CHECKING:
    from service.runtime import Runtime

logger = logging.getLogger("service")

EXIT_BAD_SETTINGS = 2
EXIT_BAD_CHECKPOINT = 3
EXIT_START_FAILED = 4

# Descriptors beyond MAX_CONNECTIONS: the checkpoint, logs, torch's files, the listening socket.
FD_RESERVE = 64
# Never ask for more than this, even where the hard limit is unlimited.
FD_CEILING = 1 << 20


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM/SIGINT drains (optionally after a delay during which
    we keep serving while load balancers notice the failing readiness probe) and the process
    then exits 0 instead of re-raising the signal."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, drain_delay_s: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_delay_s = drain_delay_s
        self._signals = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
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
    listener = configure_logging(settings.log_level, settings.log_format)
    try:
        return serve(settings)
    finally:
        listener.stop()


def serve(settings: Settings) -> int:
    # Imported only now so that a bad setting is reported at once, not after loading torch.
    from model.checkpoint import CheckpointError, load_checkpoint
    from service.main import create_app

    try:
        checkpoint = load_checkpoint(settings.model_dir)
    except CheckpointError as exc:
        logger.critical("service: cannot load the checkpoint: %s", exc)
        return EXIT_BAD_CHECKPOINT
    app = create_app(settings, checkpoint=checkpoint)
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
        ),
    )
    server = DrainingServer(config, app.state.runtime, settings.drain_delay_s)
    server.run()
    if server.runtime.status == "failed":
        return EXIT_START_FAILED
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
