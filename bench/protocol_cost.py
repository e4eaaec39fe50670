"""What the guarded protocol (service/server/http_guard.py) adds per request over uvicorn's httptools
protocol: `python -m bench.protocol_cost`. Each protocol parses the same kept-alive POST
requests from a null transport on uvloop, and a trivial ASGI app answers them; medians of
alternating runs, in µs per request (the parsing, the task and the response framing included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.server.http_guard import guarded_protocol

REQUEST = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 20\r\n\r\n{"text": "good fil"}'
)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


class _NullTransport:
    def __init__(self) -> None:
        self.closing = False
        self.answers = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.answers += data.startswith(b"HTTP/1.1 200")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _per_request_us(protocol: type[HttpToolsProtocol], requests: int) -> float:
    config = Config(app=_app, lifespan="off", log_config=None, access_log=False)
    config.load()
    connection = protocol(config=config, server_state=ServerState(), app_state={})
    transport = _NullTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    started = time.perf_counter()
    for _ in range(requests):
        connection.data_received(REQUEST)
        await asyncio.sleep(0)  # the request's task runs and answers
        await asyncio.sleep(0)
    seconds = time.perf_counter() - started
    connection.connection_lost(None)
    if transport.answers != requests:  # a timing of requests not served would mean nothing
        raise RuntimeError(f"{protocol.__name__}: {transport.answers} answers to {requests} requests")
    return 1e6 * seconds / requests


async def _compare(requests: int, repeats: int) -> dict[str, float]:
    kinds = {"httptools": HttpToolsProtocol, "guarded": guarded_protocol(5.0, 65536, 1000)}
    runs: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(repeats):
        for name, protocol in kinds.items():
            runs[name].append(await _per_request_us(protocol, requests))
    return {name: round(statistics.median(values), 2) for name, values in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = uvloop.run(_compare(args.requests, args.repeats))
    print(f"µs per request (median of {args.repeats}): {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
