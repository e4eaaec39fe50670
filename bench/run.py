"""python -m bench.run: every benchmark section, bounded in time, results to --out.

Sections: offline ceiling; served load at several concurrencies (default settings) with the
generator chosen for least CPU, GET /health floor, explain cost and a py-spy profile; peers
(LitServe, plain FastAPI) on the same reviews at c=1 and c=64; start-up and size; batching
policies. Writes *.json, RESULTS.md and PNGs.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import analysis, image, report, sections
from bench.load import figures_generator
from bench.peers import measure_peers
from bench.report import machine
from bench.reviews import DEFAULT_DATA, load_reviews, typical, with_sentences, write_bodies
from bench.sections import Policy, Timing
from bench.server import REPO, Server, service_available, service_default
from bench.standin import ModelChoice, choose_model

logger = logging.getLogger("bench")

ALL_SECTIONS = ("offline", "served", "peers", "startup", "policy")
DEFAULT_POLICIES = "1:0:1,8:2:1,16:5:1,32:5:1,64:5:1,64:10:1,128:10:1,32:5:2"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="aclImdb .tar.gz (generated text if missing)"
    )
    p.add_argument("--generated", action="store_true", help="use generated text even if --data exists")
    p.add_argument("--model-dir", type=Path, help="checkpoint to serve (default: shipped, else a stand-in)")
    p.add_argument(
        "--out", type=Path, help="results directory (default bench/results, smoke: bench/results/smoke)"
    )
    p.add_argument(
        "--smoke", action="store_true", help="seconds-long run of every code path (not a benchmark)"
    )
    p.add_argument("--duration", type=float, help="seconds per load level (default 12, smoke 1)")
    p.add_argument(
        "--sections", default=",".join(ALL_SECTIONS), help="comma list of " + ",".join(ALL_SECTIONS)
    )
    p.add_argument("--concurrency", help="comma list (default 1,4,16,64,256; smoke 1,8)")
    p.add_argument("--policies", default=DEFAULT_POLICIES, help="BATCH:WAIT_MS:THREADS,... (smoke: 1:0:1)")
    p.add_argument("--reviews", type=int, help="reviews sampled (default 2000, smoke 64)")
    p.add_argument(
        "--generator",
        help="load generator: wrk (the default, required for figures), or asyncio/httpx for checks "
        "(the default under --smoke)",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.add_argument("--image-size-mb", type=float, help="image size to report (else read, see bench/image.py)")
    p.add_argument("--log-level", default="INFO")
    return p


def configure(args: argparse.Namespace) -> tuple[Timing, list[int], list[Policy]]:
    smoke = args.smoke
    args.generator_forced = args.generator is not None
    args.generator = args.generator or ("asyncio" if smoke else figures_generator())
    levels = [int(c) for c in (args.concurrency or ("1,8" if smoke else "1,4,16,64,256")).split(",")]
    policies = [
        Policy.parse(p)
        for p in ("1:0:1" if smoke and args.policies == DEFAULT_POLICIES else args.policies).split(",")
        if p
    ]
    timing = (
        Timing(
            level=1.0,
            warmup=0.0,
            policy_level=1.0,
            policy_warmup=0.0,
            explain=1.0,
            health=0.5,
            profile=2.0,
        )
        if smoke
        else Timing()
    )
    if args.duration:
        timing.level = timing.policy_level = args.duration
    args.reviews = args.reviews or (64 if smoke else 2000)
    args.out = args.out or (REPO / "bench" / "results" / ("smoke" if smoke else ""))
    return timing, levels, policies


def machine_meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        **machine(),
        "mode": "smoke" if args.smoke else "full",
        "argv": sys.argv[1:],
    }


def server_threads() -> int:
    threads = int(service_default("torch_threads", 1))
    return threads or (os.cpu_count() or 1)


def run_offline(model: ModelChoice, texts: list[str], smoke: bool) -> dict[str, Any]:
    from model.predictor import Predictor

    predictor = Predictor.load(model.directory)
    threads = server_threads()
    counts = sorted({1, 2, threads, len(os.sched_getaffinity(0))})
    return sections_offline(predictor, texts, threads, counts, smoke)


def sections_offline(
    predictor: Any, texts: list[str], threads: int, counts: list[int], smoke: bool
) -> dict[str, Any]:
    from bench.offline import run_offline as offline

    if smoke:
        return offline(predictor, texts, threads, [threads], [1, 16], 32, 1, 1.0)
    return offline(predictor, texts, threads, counts, [1, 4, 16, 32, 64, 128], 800, 3, 4.0)


def run_served(
    args: argparse.Namespace,
    model: ModelChoice,
    timing: Timing,
    levels: list[int],
    files: dict[str, Path],
    log: Path,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(served, explain, profile, first start-up) on one server with default settings."""
    with Server(model.directory, {}, log) as server:
        assert server.startup is not None
        first_start = {
            "listening_s": server.startup.listening_s,
            "ready_s": server.startup.ready_s,
            "idle_rss_mb": sections.idle_rss_mb(server),
        }
        kind = args.generator
        gen = {"chosen": kind, "forced": args.generator_forced}
        served: dict[str, Any] = {
            "settings": {
                k: service_default(k, None) for k in ("max_batch_size", "max_wait_ms", "torch_threads")
            },
            "generator": gen,
            "levels": sections.sweep(server, kind, files["bodies"], levels, timing.level, timing.warmup),
            "health_c1": sections.measure_level(
                server, kind, None, 1, timing.health, timing.warmup / 2, path="/health"
            ),
        }
        explain = sections.explain_cost(
            server, kind, files["typical"], files["explain"], timing.explain, timing.warmup
        )
        explain["sentences"] = sections.sentence_cost(
            server, kind, files["twenty"], files["twenty_sentences"], timing.explain, timing.warmup
        )
        prof: dict[str, Any] = {"skipped": "--no-profile"}
        if not args.no_profile:
            conc = 64 if 64 in levels else max(levels)
            prof = sections.profile_under_load(
                server, kind, files["bodies"], conc, timing.profile, log.parent
            )
    return served, explain, prof, first_start


def default_policy() -> Policy:
    return Policy(
        int(service_default("max_batch_size", 32)),
        float(service_default("max_wait_ms", 5.0)),
        int(service_default("torch_threads", 1)),
    )


def estimate_s(
    timing: Timing, levels: list[int], grid: list[Policy], wanted: set[str], smoke: bool = False
) -> float:
    """A rough wall-clock estimate on a quiet machine (wrk runs last whole seconds)."""

    def run(seconds: float) -> float:
        return math.ceil(seconds) if seconds > 0 else 0.0

    start = 3.0
    total = (5.0 if smoke else 10.0) + ((2.0 if smoke else 45.0) if "offline" in wanted else 0.0)
    if "peers" in wanted:
        total += 2 * (start + 2 * (run(timing.warmup) + run(timing.level)))
    if wanted & {"served", "policy"}:
        total += start + run(timing.health)
        total += len(levels) * (run(timing.warmup) + run(timing.level))
        total += 4 * (run(timing.warmup) + run(timing.explain)) + run(timing.profile) + 3
    if "startup" in wanted and not smoke:
        total += 2 * (start + 1)
    if "policy" in wanted:
        total += (len(grid) - 1) * (
            start + len(levels) * (run(timing.policy_warmup) + run(timing.policy_level))
        )
    return total


def run_sections(args: argparse.Namespace, results: dict[str, Any], scratch: Path) -> None:
    timing, levels, grid = configure(args)
    wanted = set(args.sections.split(","))
    results["meta"]["estimated_s"] = estimate_s(timing, levels, grid, wanted, args.smoke)
    logger.info(
        "sections %s; expect about %.0f s on a quiet machine",
        ",".join(sorted(wanted)),
        results["meta"]["estimated_s"],
    )
    reviews = load_reviews(None if args.generated else args.data, args.reviews)
    results["meta"]["data"] = reviews.describe()
    model = choose_model(args.model_dir, scratch, reviews.texts, tiny=args.smoke)
    results["meta"]["model"] = {k: v for k, v in model.__dict__.items() if k != "directory"} | {
        "directory": str(model.directory)
    }
    if "offline" in wanted:
        results["offline"] = run_offline(model, reviews.texts, args.smoke)
    if not service_available():
        why = "service/__main__.py not found (the service is not in this checkout)"
        for key in ("served", "explain", "sentences", "profile", "startup", "policy"):
            results[key] = {"skipped": why}
        return
    typical_texts, twenty = typical(reviews.texts, 200), with_sentences(reviews.texts, 100)
    files = {
        "bodies": write_bodies(reviews.texts, scratch / "bodies.jsonl"),
        "typical": write_bodies(typical_texts, scratch / "typical.jsonl"),
        "explain": write_bodies(typical_texts, scratch / "explain.jsonl", explain=True),
        "twenty": write_bodies(twenty, scratch / "twenty.jsonl"),
        "twenty_sentences": write_bodies(twenty, scratch / "twenty_sentences.jsonl", sentences=True),
        "scratch": scratch,
    }
    log = args.out / "tmp" / "server.log"  # bench/results/tmp/ is git-ignored
    log.parent.mkdir(parents=True, exist_ok=True)
    first_start: dict[str, Any] | None = None
    if wanted & {"served", "policy"}:
        served, explain, prof, first_start = run_served(args, model, timing, levels, files, log)
        results.update(served=served, explain=explain, profile=prof)
        results["sentences"] = explain.pop("sentences")  # measured on the same server
    if "peers" in wanted and "served" in results:
        peer_levels = [c for c in levels if c in (1, 8, 64)]
        results["peers"] = measure_peers(
            model.directory,
            str(results["served"]["generator"]["chosen"]),
            files["bodies"],
            peer_levels,
            timing.level,
            timing.warmup,
            log,
        )
    if "startup" in wanted:
        repeats = 1 if args.smoke else 3
        start = (
            sections.startup(model.directory, {}, repeats - (1 if first_start else 0), log)
            if repeats > (1 if first_start else 0)
            else {"runs": []}
        )
        runs = ([first_start] if first_start else []) + list(start["runs"])
        results["startup"] = {"runs": runs, **_startup_medians(runs)}
    if "policy" in wanted and "served" in results:
        default = default_policy()
        grid = [default, *(p for p in grid if p != default)] if default not in grid else grid
        known = {default: results["served"]["levels"]}
        rows = sections.policies(
            model.directory,
            grid,
            str(results["served"]["generator"]["chosen"]),
            files["bodies"],
            levels,
            timing,
            log,
            known,
        )
        for row in rows:
            row["default"] = (
                Policy(row["max_batch_size"], row["max_wait_ms"], row["torch_threads"]) == default
            )
        results["policy"] = {
            "policies": rows,
            "winners": analysis.policy_winners(rows),
            "default": default.name,
        }


def _startup_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    return {
        "ready_s_median": statistics.median(float(r["ready_s"]) for r in runs),
        "idle_rss_mb_median": statistics.median(float(r["idle_rss_mb"]) for r in runs),
    }


def derive(results: dict[str, Any]) -> None:
    served = results.get("served", {})
    rows = served.get("levels", [])
    breakdown: dict[str, Any] = {}
    tok = results.get("offline", {}).get("tokenization", {}).get("us_per_review")
    if (c1 := analysis.level(rows, 1)) is not None:
        breakdown["c1"] = analysis.breakdown_c1(c1, tok)
    if rows:
        loaded = analysis.level(rows, 64) or rows[-1]
        prof = results.get("profile")
        breakdown["loaded"] = analysis.breakdown_loaded(loaded, prof if isinstance(prof, dict) else None)
    results["breakdown"] = breakdown
    results["targets"] = analysis.targets(results)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": machine_meta(args)}
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        try:
            run_sections(args, results, scratch)
        except Exception as exc:  # keep what was measured; the report says the run failed
            logger.exception("benchmark failed")
            results["meta"]["error"] = f"{type(exc).__name__}: {exc}"
        results["image"] = image.image_size(args.image_size_mb)
        derive(results)
        results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
        results["meta"]["load_average_end"] = round(os.getloadavg()[0], 2)
        written = report.write_json(results, args.out)
        plots = [] if args.no_plots else report.write_plots(results, args.out)
        md = report.write_markdown(results, args.out, plots)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_summary(results, [*written, *plots, md])
    return 1 if results["meta"].get("error") else 0


def print_summary(results: dict[str, Any], paths: list[Path]) -> None:
    data = results["meta"].get("data", {})
    print(f"\nreviews: {'REAL IMDB' if data.get('real') else 'GENERATED TEXT'} ({data.get('source')})")
    if results["meta"].get("model", {}).get("note"):
        print(results["meta"]["model"]["note"])
    if results["meta"].get("error"):
        print(f"RUN FAILED: {results['meta']['error']}")
    for t in results.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"{verdict:>12}  {t['name']}: {t['value']} (target {t['target']}; {t['detail']})")
    print(f"done in {results['meta']['duration_s']} s; wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    sys.exit(main())
