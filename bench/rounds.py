"""python -m bench.rounds: the service, its peers and the offline ceiling in interleaved rounds,
for ratios that hold on a busy machine.

One `make bench` measures each system once, minutes apart; when other work comes and goes on
the machine, the systems see different loads. Here every round measures the offline ceiling
(the model alone, one process per core) and starts each system in turn (the order rotates),
measures c=1 and c=64 with the same reviews and wrk, and the ratios are taken within a round;
the medians over rounds are reported. Each peer runs at every setting in `PEER_SETTINGS` (one
worker, and one per CPU); a ratio is against its better setting in that round.
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
from bench.load import figures_generator
from bench.offline import ceiling_processes
from bench.peers import available, better_of, cpus, describe_peer, peer_systems
from bench.report import machine
from bench.reviews import DEFAULT_DATA, load_reviews, write_bodies
from bench.sections import measure_level
from bench.server import REPO, Server
from model.predictor import Predictor

logger = logging.getLogger("bench.rounds")

SERVICE = "service"


CEILING = "offline ceiling"


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
        "server_cpu_ms_per_request": float(row["server_cpu_ms_per_request"]),
        "pss_mb": float(row["server_peak_rss_mb"]),  # all of the server's processes (PSS)
    }


def offline_ceiling(predictor: Predictor, texts: list[str]) -> float:
    """Reviews/s of the model alone, one single-threaded process per core (bench/offline.py)."""
    result = ceiling_processes(predictor, texts, cpus())
    return float(result["reviews_per_s"]) if result else float("nan")


def best_setting(round_: dict[str, Any], peer: str) -> str | None:
    """The round's better setting of `peer` (e.g. "litserve/2"), by bench.peers.BETTER_BY."""
    keys = {"throughput": "throughput_rps", "p50": "p50_ms"}
    settings = [s for s in round_ if s.split("/")[0] == peer]
    return better_of(peer, settings, lambda s, c, name: float(round_[s][f"c{c}"][keys[name]]))


def ratios(round_: dict[str, Any]) -> dict[str, float]:
    """Within one round: the service against the ceiling and the better setting of each peer
    (LitServe at c=64 by throughput, with its p99; plain FastAPI at c=1 by p50)."""
    ours = round_[SERVICE]
    out = {"throughput_c64_vs_ceiling": ratio(ours["c64"]["throughput_rps"], round_[CEILING])}
    lit = best_setting(round_, "litserve")
    if lit:
        best = round_[lit]["c64"]
        out["throughput_c64_vs_litserve"] = ratio(ours["c64"]["throughput_rps"], best["throughput_rps"])
        out["p99_c64_vs_litserve"] = ratio(ours["c64"]["p99_ms"], best["p99_ms"])
    plain = best_setting(round_, "fastapi")
    if plain:
        out["p50_c1_vs_fastapi"] = ratio(ours["c1"]["p50_ms"], round_[plain]["c1"]["p50_ms"])
    if "floor" in round_:
        floor = round_["floor"]["c64"]["throughput_rps"]
        out["throughput_c64_vs_http_floor"] = ratio(ours["c64"]["throughput_rps"], floor)
    if "bare" in round_:  # what the contract costs: the same work served with nothing around it
        bare = round_["bare"]["c64"]["throughput_rps"]
        out["throughput_c64_vs_bare"] = ratio(ours["c64"]["throughput_rps"], bare)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The README's performance table: medians over rounds of each system, then the ratios."""
    rounds = result["rounds"]
    systems = [s for s in rounds[0] if s not in ("ratios", CEILING)]

    def median(system: str, level: str, key: str) -> float:
        return statistics.median(float(r[system][level][key]) for r in rounds)

    ceiling = statistics.median(float(r[CEILING]) for r in rounds)
    processes = result.get("ceiling_processes", cpus())
    rows = [f"| offline ceiling (the model alone, {processes} processes x 1 thread) "
            f"| {ceiling:,.0f} reviews/s | | | |"]
    for system in systems:
        name = "**this service** (defaults)" if system == SERVICE else _peer_name(result, system)
        rows.append(
            f"| {name} | {median(system, 'c64', 'throughput_rps'):,.0f} "
            f"| {median(system, 'c64', 'p99_ms'):.0f} ms | {median(system, 'c1', 'p50_ms'):.2f} ms "
            f"| {median(system, 'c64', 'pss_mb'):.0f} MB |"
        )
    machine = result["machine"]
    ratios = ", ".join(f"{k} {v}" for k, v in result["median_ratios"].items())
    return "\n".join([
        f"{machine['started'][:10]}, {machine['cpu']} ({machine['cores']} cores), commit "
        f"{machine['commit']}; wrk (one thread) on the same machine, {result['data']['count']} "
        f"real IMDB reviews, one per request; medians of {len(rounds)} interleaved rounds of "
        f"{result['duration_s']:g} s per level.",
        "",
        "| system | req/s at c=64 | p99 at c=64 | p50 at c=1 | PSS, all processes, c=64 |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Ratios (medians of the per-round ratios): {ratios}.",
    ])


def _peer_name(result: dict[str, Any], system: str) -> str:
    settings = result["peer_settings"][system]
    if settings["kind"] == "litserve":
        return (f"LitServe {settings['version']}, workers_per_device={settings['workers']}, "
                f"batch {settings['max_batch_size']}, {1e3 * settings['batch_timeout_s']:g} ms")
    if settings["kind"] == "fastapi":
        return f"plain FastAPI (sync route), uvicorn --workers {settings['workers']}"
    if settings["kind"] == "bare":
        return (f"bare batched app (the ceiling's work, no contract), {settings['workers']} workers, "
                f"batch {settings['max_batch_size']}")
    return f"HTTP floor (bare ASGI, no model), {settings['workers']} workers"


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
    p.add_argument("--table", type=Path, help="print the markdown table of an earlier run's JSON")
    args = p.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    systems = [SERVICE] + [s for s in peer_systems() if available(s.split("/")[0]) is None]
    generator = figures_generator()
    reviews = load_reviews(args.data, args.reviews)
    predictor = Predictor.load(args.model_dir)  # for the offline ceiling of every round
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        bodies = write_bodies(reviews.texts, Path(tmp) / "bodies.jsonl")
        log = Path(tmp) / "server.log"
        for index in range(args.rounds):
            shift = index % len(systems)
            order = systems[shift:] + systems[:shift]
            round_: dict[str, Any] = {CEILING: offline_ceiling(predictor, reviews.texts)}
            for system in order:
                round_[system] = measure(system, args.model_dir, bodies, generator, args.duration, log)
            round_["ratios"] = ratios(round_)
            logger.info("round %d: %s", index + 1, json.dumps(round_["ratios"]))
            rounds.append(round_)
    keys = sorted({k for r in rounds for k in r["ratios"]})
    medians = {k: round(statistics.median(r["ratios"][k] for r in rounds), 3) for k in keys}
    result = {
        "machine": machine(),
        "data": reviews.describe(),
        "generator": generator,
        "ceiling_processes": cpus(),
        "peer_settings": {s: describe_peer(s) for s in systems if s != SERVICE},
        "duration_s": args.duration,
        "rounds": rounds,
        "median_ratios": medians,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for key, value in medians.items():
        print(f"{key}: {value} (median of {len(rounds)} rounds)")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
