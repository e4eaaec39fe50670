"""Peers in the same run: the same `Predictor`, the same reviews, the same load generator.

* `litserve`: LitServe (optional bench dependency: `pip install '.[bench]'`) with dynamic
  batching at this service's batch size and wait (16 reviews, 5 ms), `workers_per_device`
  inference workers;
* `fastapi`: a plain FastAPI app, one model call per request (a sync route, FastAPI's
  thread pool), the smallest thing one would write, under `uvicorn --workers`;
* `floor`: no model and no framework: a bare ASGI app under uvicorn (httptools, uvloop), one
  worker per CPU, that reads the body and returns a fixed answer. What any Python HTTP server
  on this machine can do at most: the ceiling the service's per-request work sits under.
* `bare`: the offline ceiling's work behind the same HTTP server and nothing else: a bare ASGI
  app, one worker per CPU, that tokenizes on the event loop (`Predictor.text_to_ids`) and
  scores on one thread in batches of what is queued (up to LITSERVE_BATCH), with no limits,
  validation, deadlines, admission, metrics or logs. The gap between it and the service is
  what the service's contract costs per request; between it and the ceiling, what HTTP and
  the load generator sharing the cores cost.

Each is given the whole machine: LitServe and the plain app run at one worker and at one per
CPU (`peer_systems`: "litserve/2", "litserve/1", …), and the better is what the service is
held against. `python -m bench.peers KIND --port P [--workers N] [--model-dir DIR]` runs one;
`measure_peers` drives them like the service (bench.sections.measure_level).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from bench.server import HOST, Server

logger = logging.getLogger(__name__)

PEERS = ("litserve", "fastapi", "floor", "bare")
# References, not peers: the most any app answers here (floor), the most the model serves with
# nothing around it (bare). They always run one worker per CPU.
REFERENCES = ("floor", "bare")
# The worker counts each peer runs at: one per CPU, and one (LitServe's default).
SCALABLE = ("litserve", "fastapi")
MODEL_DIR_ENV = "PEER_MODEL_DIR"
FLOOR_ANSWER = b'{"label":"positive","confidence":0.9,"probabilities":{"negative":0.1,"positive":0.9}}'
LITSERVE_BATCH = 16  # the service's MAX_BATCH_SIZE and MAX_WAIT_MS defaults, for a like-for-like
LITSERVE_WAIT_S = 0.005


class Review(BaseModel):
    """The plain app's request body (module level: FastAPI resolves the annotation by name)."""

    text: str


def available(kind: str) -> str | None:
    """None if the peer can run here, else why not."""
    if kind == "litserve" and importlib.util.find_spec("litserve") is None:
        return "litserve is not installed (pip install '.[bench]')"
    return None


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def peer_systems() -> list[str]:
    """Every peer setting a run measures: "litserve/2", "litserve/1", "fastapi/2", …, "floor"."""
    counts = sorted({cpus(), 1}, reverse=True)
    return [f"{kind}/{n}" for kind in SCALABLE for n in counts] + list(REFERENCES)


def describe_peer(system: str) -> dict[str, Any]:
    kind, _, workers = system.partition("/")
    settings: dict[str, Any] = {"workers": int(workers) if workers else cpus()}
    if kind == "litserve":
        import litserve

        settings.update(version=litserve.__version__, max_batch_size=LITSERVE_BATCH,
                        batch_timeout_s=LITSERVE_WAIT_S, setting="workers_per_device")
    elif kind == "fastapi":
        settings.update(setting="uvicorn --workers", route="sync def, one model call per request")
    elif kind == "bare":
        settings.update(max_batch_size=LITSERVE_BATCH)
    return {"kind": kind, **settings}


def serve_litserve(port: int, model_dir: Path | None, workers: int) -> None:
    import litserve as ls

    from bench.peer_litserve import SentimentAPI

    api = SentimentAPI(model_dir, max_batch_size=LITSERVE_BATCH, batch_timeout=LITSERVE_WAIT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=workers)
    server.run(host=HOST, port=port, log_level="warning", generate_client_file=False)


def serve_fastapi(port: int, model_dir: Path | None, workers: int) -> None:
    import uvicorn

    if model_dir is not None:
        os.environ[MODEL_DIR_ENV] = str(model_dir)  # for each worker's plain_app()
    uvicorn.run(
        "bench.peers:plain_app",
        factory=True,
        host=HOST,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def plain_app() -> Any:
    """The plain FastAPI app (a factory: each uvicorn worker builds its own)."""
    from fastapi import FastAPI

    from bench.standin import load_predictor
    from model.predictor import prediction_row

    directory = os.environ.get(MODEL_DIR_ENV)
    predictor = load_predictor(Path(directory) if directory else None)
    app = FastAPI()

    @app.post("/predict")
    def predict(review: Review) -> dict[str, Any]:
        row = predictor.predict_texts([review.text])[0].tolist()
        return prediction_row(predictor.labels, row)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _read_body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The HTTP floor: read the request, answer a constant (see the module doc)."""
    if scope["type"] != "http":
        return
    await _read_body(receive)
    await _answer(send, FLOOR_ANSWER)


def serve_floor(port: int, model_dir: Path | None, workers: int) -> None:
    _serve_bare_asgi("bench.peers:floor_app", port, workers)


def _serve_bare_asgi(app: str, port: int, workers: int, factory: bool = False) -> None:
    import uvicorn

    uvicorn.run(
        app,
        factory=factory,
        host=HOST,
        port=port,
        workers=workers,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


def serve_bare(port: int, model_dir: Path | None, workers: int) -> None:
    if model_dir is not None:
        os.environ[MODEL_DIR_ENV] = str(model_dir)  # for each worker's bare_app()
    _serve_bare_asgi("bench.peers:bare_app", port, workers, factory=True)


def bare_app() -> Any:
    """The bare batched app (a factory: each uvicorn worker builds its own; see the module doc)."""
    import torch

    from bench.standin import load_predictor
    from model.predictor import prediction_row

    directory = os.environ.get(MODEL_DIR_ENV)
    predictor = load_predictor(Path(directory) if directory else None)
    queued: list[tuple[list[int], asyncio.Future[list[float]]]] = []
    ready = threading.Condition()
    started: list[asyncio.AbstractEventLoop] = []

    def resolve(futures: list[asyncio.Future[list[float]]], rows: list[list[float]]) -> None:
        for future, row in zip(futures, rows, strict=True):
            future.set_result(row)

    def score(loop: asyncio.AbstractEventLoop) -> None:
        torch.set_num_threads(1)
        while True:
            with ready:
                while not queued:
                    ready.wait()
                batch = queued[:LITSERVE_BATCH]
                del queued[:LITSERVE_BATCH]
            rows = predictor.predict_ids([ids for ids, _ in batch]).tolist()
            loop.call_soon_threadsafe(resolve, [future for _, future in batch], rows)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not started:
            started.append(asyncio.get_running_loop())
            threading.Thread(target=score, args=(started[0],), daemon=True).start()
        request = await _read_body(receive)
        if scope["method"] != "POST":  # the readiness probe
            await _answer(send, FLOOR_ANSWER)
            return
        future = started[0].create_future()
        with ready:
            queued.append((predictor.text_to_ids(orjson.loads(request)["text"]), future))
            ready.notify()
        await _answer(send, orjson.dumps(prediction_row(predictor.labels, await future)))

    return app


def measure_peers(
    model_dir: Path,
    generator: str,
    bodies: Path,
    levels: list[int],
    seconds: float,
    warmup: float,
    log_path: Path,
) -> dict[str, Any]:
    """{system: {"levels": [rows], "settings": …} or {"skipped": why}} for every peer setting
    (`peer_systems`), one after the other; and under each peer's own name ("litserve",
    "fastapi", "floor") its better setting, the one the service is held against."""
    from bench.sections import measure_level

    out: dict[str, Any] = {}
    for system in peer_systems():
        kind = system.split("/")[0]
        why = available(kind)
        if why:
            logger.warning("peer %s skipped: %s", system, why)
            out[system] = {"skipped": why}
            continue
        try:
            with Server(model_dir, {}, log_path, peer=system) as server:
                assert server.startup is not None
                rows = [
                    measure_level(server, generator, bodies, c, seconds, warmup) for c in levels
                ]
                out[system] = {"ready_s": server.startup.ready_s, "levels": rows,
                               "settings": describe_peer(system)}
        except (RuntimeError, OSError) as exc:
            logger.error("peer %s failed: %s", system, exc)
            out[system] = {"skipped": f"failed: {exc}"[:300]}
    for kind in PEERS:
        out[kind] = better_setting(out, kind)
    return out


# The setting of each peer the service is held against: the highest throughput at c=64, or (the
# plain app, compared at c=1) the lowest p50.
BETTER_BY = {
    "litserve": (64, "throughput"), "fastapi": (1, "p50"),
    **{reference: (64, "throughput") for reference in REFERENCES},
}
Figure = Callable[[str, int, str], float | None]  # (setting, concurrency, figure) -> its value


def better_of(kind: str, settings: list[str], figure: Figure) -> str | None:
    """The better of `kind`'s measured `settings` by BETTER_BY; None if none has the figure."""
    concurrency, name = BETTER_BY[kind]
    found = [(value, s) for s in settings if (value := figure(s, concurrency, name)) is not None]
    if not found:
        return None
    return (max if name == "throughput" else min)(found)[1]


def better_setting(out: dict[str, Any], kind: str) -> dict[str, Any]:
    """`kind`'s better setting among those `measure_peers` measured, or why there is none."""
    measured = [s for s in out if s.split("/")[0] == kind and "levels" in out[s]]

    def figure(system: str, concurrency: int, name: str) -> float | None:
        levels = out[system]["levels"]
        row = next((r for r in levels if r["concurrency"] == concurrency), None)
        if name == "p50":
            return None if row is None else float(row["latency_ms"]["p50"])
        return float((row or levels[-1])["throughput_rps"])  # a short run: its highest level

    best = better_of(kind, measured, figure)
    if best is None:
        skipped = [out[s] for s in out if s.split("/")[0] == kind]
        return skipped[0] if skipped else {"skipped": "not measured"}
    return {**out[best], "setting": best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=PEERS)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--workers", type=int, default=0, help="processes (default: one per CPU)")
    args = p.parse_args(argv)
    why = available(args.kind)
    if why:
        logger.error("%s", why)
        return 2
    serve = {
        "litserve": serve_litserve, "fastapi": serve_fastapi, "floor": serve_floor, "bare": serve_bare
    }
    serve[args.kind](args.port, args.model_dir, args.workers or cpus())
    return 0


if __name__ == "__main__":
    sys.exit(main())
