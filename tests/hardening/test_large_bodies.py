"""Many clients sending the largest valid bodies (64 reviews filling MAX_BODY_BYTES) to the REAL
server: the probes must keep answering quickly. Each review is read only as far as the model
keeps it, and a large request is tokenized off the event loop.

The bound is the target (1 s) with a margin for this shared machine; `-s` prints the worst."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.test_overload import probe
from tests.service.test_e2e import server

pytestmark = pytest.mark.slow

CLIENTS = 32
DURATION_S = 4.0
MAX_BODY_BYTES = 1 << 20
TARGET_S = 1.0
MARGIN_S = 1.0  # machine noise: the load generator shares the server's cores


def one_megabyte_body() -> bytes:
    sentence = "The plot wanders, the acting is fine and the score is lovely. "
    text = (sentence * (16_000 // len(sentence) + 1))[:16_000]
    body = json.dumps({"texts": [text] * 64}).encode()
    assert MAX_BODY_BYTES - 30_000 < len(body) <= MAX_BODY_BYTES
    return body


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("large") / "server.log"
    env = {"MAX_BODY_BYTES": str(MAX_BODY_BYTES), "MAX_CHARS": "20000", "MAX_BATCH": "64"}
    with server(tiny_checkpoint_dir, log, **env) as (process, url):
        yield process, url, log


async def sender(port: int, request: bytes, end: float, statuses: list[int]) -> None:
    """Send the request over and over on one kept-alive connection (raw: cheap for the client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < end:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.append(int(head.split()[1]))
            fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            length = int(fields[b"content-length"])
            await reader.readexactly(length)
            if fields.get(b"connection", b"").strip() == b"close":
                break
    finally:
        writer.close()


async def load_and_probe(url: str) -> tuple[list[int], list[tuple[str, int, float]]]:
    port = int(url.rsplit(":", 1)[1])
    body = one_megabyte_body()
    request = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    end = time.monotonic() + DURATION_S
    statuses: list[int] = []
    probes: list[tuple[str, int, float]] = []

    senders = (sender(port, request, end, statuses) for _ in range(CLIENTS))
    await asyncio.gather(probe(url, end, probes, interval=0.05), *senders)
    return statuses, probes


def test_probes_answer_while_32_clients_send_1_mb_bodies(live: Any) -> None:
    process, url, log = live
    statuses, probes = asyncio.run(load_and_probe(url))
    assert set(statuses) <= {200, 429}, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(200) >= CLIENTS, len(statuses)  # the bodies were really scored
    worst = max(seconds for _, _, seconds in probes)
    scored = statuses.count(200)
    print(f"\n{len(statuses)} bodies ({scored} scored), {len(probes)} probes, worst {worst:.3f} s")
    assert len(probes) >= 20, probes
    assert all(status == 200 for _, status, _ in probes), probes
    assert worst < TARGET_S + MARGIN_S, sorted(probes, key=lambda p: -p[2])[:5]
    assert process.poll() is None, log.read_text()[-2000:]
