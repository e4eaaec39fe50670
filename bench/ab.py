"""Throughput of two checkouts of the service side by side: `python -m bench.ab --base DIR`
starts the server of DIR (say a worktree of main) and of this checkout in turn, same model,
same reviews, same load (wrk if installed), for several alternating rounds, and reports each
one's median req/s and the ratio. Alternating rounds spread a shared machine's noise over
both sides; the spread of the per-round ratios says how much of it is left.

    git worktree add --detach /tmp/base main
    python -m bench.ab --base /tmp/base --data ../shared/data/aclImdb_train.tar.gz
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path

from bench.load import figures_generator
from bench.reviews import load_reviews, write_bodies
from bench.sections import measure_level
from bench.server import REPO, Server

logger = logging.getLogger("bench.ab")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the other checkout (before)")
    p.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "review-sentiment")
    p.add_argument("--data", type=Path, help="IMDB reviews (else generated text)")
    p.add_argument("--reviews", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, help="write the JSON result here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    generator = figures_generator()
    reviews = load_reviews(args.data, args.reviews)
    sides = {"base": args.base.resolve(), "this": REPO}
    rps: dict[str, list[float]] = {name: [] for name in sides}
    errors: dict[str, int] = {name: 0 for name in sides}
    cpu_ms: dict[str, list[float]] = {name: [] for name in sides}
    p99_ms: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        bodies = write_bodies(reviews.texts, Path(tmp) / "bodies.jsonl")
        for round_ in range(args.rounds):
            # Alternate which side goes first, so neither always runs on a warmer machine.
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                with Server(args.model_dir, repo=sides[name]) as server:
                    # CPU of the whole process tree: with WORKERS the model runs in children.
                    row = measure_level(server, generator, bodies, args.concurrency, args.duration, 2.0)
                rate = row["throughput_rps"]
                rps[name].append(rate)
                cpu_ms[name].append(row["server_cpu_ms_per_request"])
                p99_ms[name].append(row["latency_ms"]["p99"])
                errors[name] += row["errors"]
                logger.info(
                    "round %d %s: %.1f req/s, p99 %.1f ms, %.3f ms server CPU per request, %d errors",
                    round_ + 1,
                    name,
                    rate,
                    p99_ms[name][-1],
                    cpu_ms[name][-1],
                    row["errors"],
                )
    ratios = [this / base for this, base in zip(rps["this"], rps["base"], strict=True)]
    summary = {
        "generator": generator,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "reviews": reviews.source,
        "base": str(sides["base"]),
        "rps": rps,
        "errors": errors,
        "median_rps": {name: statistics.median(values) for name, values in rps.items()},
        # CPU per request moves less with a busy machine than req/s does.
        "cpu_ms_per_request": cpu_ms,
        "median_cpu_ms_per_request": {name: statistics.median(v) for name, v in cpu_ms.items()},
        "median_p99_ms": {name: statistics.median(v) for name, v in p99_ms.items()},
        "ratio_of_medians": statistics.median(rps["this"]) / statistics.median(rps["base"]),
        "ratio_per_round": ratios,
        "median_ratio_per_round": statistics.median(ratios),
    }
    text = json.dumps(summary, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
