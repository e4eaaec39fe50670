"""Peers in the same run: the same `Predictor`, the same reviews, the same load generator.

* `litserve`: LitServe (optional bench dependency: `pip install '.[bench]'`) with dynamic
  batching at this service's batch size and wait (16 reviews, 5 ms), one inference worker;
* `fastapi`: a plain FastAPI app, one model call per request (a sync route, FastAPI's
  thread pool), the smallest thing one would write;
* `floor`: no model and no framework: a bare ASGI app under uvicorn (httptools, uvloop), one
  worker per CPU, that reads the body and returns a fixed answer. What any Python HTTP server
  on this machine can do at most: the ceiling the service's per-request work sits under.

`python -m bench.peers KIND --port P [--model-dir DIR]` runs one of them; `measure_peers` drives
them like the service (bench.sections.measure_level) and returns their rows by peer.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.server import HOST, Server

logger = logging.getLogger(__name__)

PEERS = ("litserve", "fastapi", "floor")
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


def serve_litserve(port: int, model_dir: Path | None) -> None:
    import litserve as ls

    from bench.peer_litserve import SentimentAPI

    api = SentimentAPI(model_dir, max_batch_size=LITSERVE_BATCH, batch_timeout=LITSERVE_WAIT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host=HOST, port=port, log_level="warning", generate_client_file=False)


def serve_fastapi(port: int, model_dir: Path | None) -> None:
    import uvicorn
    from fastapi import FastAPI

    from bench.standin import load_predictor
    from model.predictor import prediction_row

    predictor = load_predictor(model_dir)
    app = FastAPI()

    @app.post("/predict")
    def predict(review: Review) -> dict[str, Any]:
        row = predictor.predict_texts([review.text])[0].tolist()
        return prediction_row(predictor.labels, row)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The HTTP floor: read the request, answer a constant (see the module doc)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": FLOOR_ANSWER})


def serve_floor(port: int, model_dir: Path | None) -> None:
    import os

    import uvicorn

    uvicorn.run(
        "bench.peers:floor_app",
        host=HOST,
        port=port,
        workers=len(os.sched_getaffinity(0)),
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


def measure_peers(
    model_dir: Path,
    generator: str,
    bodies: Path,
    levels: list[int],
    seconds: float,
    warmup: float,
    log_path: Path,
) -> dict[str, Any]:
    """{peer: {"levels": [rows]} or {"skipped": why}} for each peer, one after the other."""
    from bench.sections import measure_level

    out: dict[str, Any] = {}
    for kind in PEERS:
        why = available(kind)
        if why:
            logger.warning("peer %s skipped: %s", kind, why)
            out[kind] = {"skipped": why}
            continue
        try:
            with Server(model_dir, {}, log_path, peer=kind) as server:
                assert server.startup is not None
                rows = [
                    measure_level(server, generator, bodies, c, seconds, warmup) for c in levels
                ]
                out[kind] = {"ready_s": server.startup.ready_s, "levels": rows}
        except (RuntimeError, OSError) as exc:
            logger.error("peer %s failed: %s", kind, exc)
            out[kind] = {"skipped": f"failed: {exc}"[:300]}
    if "litserve" in out and "levels" in out["litserve"]:
        import litserve

        out["litserve"]["version"] = litserve.__version__
        out["litserve"]["settings"] = {"max_batch_size": LITSERVE_BATCH, "batch_timeout_s": LITSERVE_WAIT_S}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=PEERS)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model-dir", type=Path)
    args = p.parse_args(argv)
    why = available(args.kind)
    if why:
        logger.error("%s", why)
        return 2
    serve = {"litserve": serve_litserve, "fastapi": serve_fastapi, "floor": serve_floor}
    serve[args.kind](args.port, args.model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
