"""python -m bench.rounds: the service and its peers in interleaved rounds, for ratios that hold
on a busy machine.

One `make bench` measures each system once, minutes apart; when other work comes and goes on
the machine, the systems see different loads. Here every round starts each system in turn (the
order rotates), measures c=1 and c=64 with the same reviews and generator, and the ratios are
taken within a round; the medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.analysis import ratio
from bench.load import available_generators
from bench.peers import PEERS, available
from bench.reviews import DEFAULT_DATA, load_reviews, write_bodies
from bench.sections import measure_level
from bench.server import REPO, Server

logger = logging.getLogger("bench.rounds")

SERVICE = "service"


def measure(
    system: str, model_dir: Path, bodies: Path, generator: str, seconds: float, log: Path
) -> dict[str, Any]:
    peer = None if system == SERVICE else system
    with Server(model_dir, {}, log, peer=peer) as server:
        return {
            f"c{c}": _summary(measure_level(server, generator, bodies, c, seconds, 1.0))
            for c in (1, 64)
        }


def _summary(row: dict[str, Any]) -> dict[str, float]:
    return {
        "throughput_rps": float(row["throughput_rps"]),
        "p50_ms": float(row["latency_ms"]["p50"]),
        "p99_ms": float(row["latency_ms"]["p99"]),
        "errors": float(row["errors"]),
    }


def ratios(round_: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Within one round: the service against LitServe (c=64) and plain FastAPI (c=1)."""
    ours = round_[SERVICE]
    out = {}
    if "litserve" in round_:
        lit = round_["litserve"]["c64"]
        out["throughput_c64_vs_litserve"] = ratio(ours["c64"]["throughput_rps"], lit["throughput_rps"])
        out["p99_c64_vs_litserve"] = ratio(ours["c64"]["p99_ms"], lit["p99_ms"])
    if "fastapi" in round_:
        out["p50_c1_vs_fastapi"] = ratio(ours["c1"]["p50_ms"], round_["fastapi"]["c1"]["p50_ms"])
    if "floor" in round_:
        floor = round_["floor"]["c64"]["throughput_rps"]
        out["throughput_c64_vs_http_floor"] = ratio(ours["c64"]["throughput_rps"], floor)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rounds", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="aclImdb .tar.gz (generated text if missing)"
    )
    p.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "review-sentiment")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per level")
    p.add_argument("--reviews", type=int, default=2000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rounds.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    systems = [SERVICE] + [kind for kind in PEERS if available(kind) is None]
    generator = "wrk" if "wrk" in available_generators() else available_generators()[0]
    reviews = load_reviews(args.data, args.reviews)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        bodies = write_bodies(reviews.texts, Path(tmp) / "bodies.jsonl")
        log = Path(tmp) / "server.log"
        for index in range(args.rounds):
            shift = index % len(systems)
            order = systems[shift:] + systems[:shift]
            round_: dict[str, Any] = {
                s: measure(s, args.model_dir, bodies, generator, args.duration, log) for s in order
            }
            round_["ratios"] = ratios(round_)
            logger.info("round %d: %s", index + 1, json.dumps(round_["ratios"]))
            rounds.append(round_)
    keys = sorted({k for r in rounds for k in r["ratios"]})
    medians = {k: round(statistics.median(r["ratios"][k] for r in rounds), 3) for k in keys}
    result = {
        "data": reviews.describe(),
        "generator": generator,
        "duration_s": args.duration,
        "rounds": rounds,
        "median_ratios": medians,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for key, value in medians.items():
        print(f"{key}: {value} (median of {len(rounds)} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
