"""Results on disk: one JSON per section, RESULTS.md (tables, targets met/missed) and PNG plots."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.peers import REFERENCES
from bench.server import REPO

logger = logging.getLogger(__name__)

SECTION_FILES = (
    "meta", "offline", "served", "startup", "policy", "explain", "sentences", "breakdown", "targets"
)


def write_json(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SECTION_FILES:
        if name in results:
            path = out / f"{name}.json"
            path.write_text(json.dumps(results[name], indent=2, sort_keys=True, default=str) + "\n")
            paths.append(path)
    combined = out / "results.json"
    combined.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    return [combined, *paths]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits if abs(value) >= 100 else max(digits, 2)}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return [*lines, ""]


def _level_rows(levels: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in levels:
        batch = r.get("server_histograms", {}).get("batch_size", {}).get("mean")
        gen_cores = r["generator_cpu_s"] / r["duration_s"] if r["duration_s"] else None
        rows.append(
            [
                r["concurrency"],
                r["throughput_rps"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p95"],
                r["latency_ms"]["p99"],
                r["errors"],
                batch,
                r["server_cores_busy"],
                r["server_cpu_ms_per_request"],
                r["server_peak_rss_mb"],
                f"{r['generator']} {gen_cores:.2f}" if gen_cores is not None else r["generator"],
            ]
        )
    return rows


LEVEL_HEADER = [
    "concurrency",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "mean batch",
    "server cores",
    "server CPU ms/req",
    "peak RSS MB",
    "generator (cores)",
]


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    lines = [
        f"- Run: {meta.get('started')} on {meta.get('cpu')} ({meta.get('cores')} cores), "
        f"torch {meta.get('torch')}, Python {meta.get('python')}, commit {meta.get('commit')}",
        f"- Reviews: {meta['data']['source']} "
        f"({'REAL IMDB reviews' if meta['data']['real'] else 'GENERATED TEXT'}"
        f", {meta['data']['count']} sampled, median {meta['data']['median_chars']} chars)",
        f"- Model: {meta['model']['kind']} `{meta['model']['model_id']}` "
        f"(max_tokens {meta['model']['max_tokens']})",
    ]
    if meta["model"].get("note"):
        lines.append(f"- **{meta['model']['note']}**")
    if meta.get("mode") == "smoke":
        lines.append("- **SMOKE RUN: tiny durations, figures are not benchmarks.**")
    for warning in meta.get("warnings", []):
        lines.append(f"- **Warning: {warning}**")
    return [*lines, ""]


def _targets_lines(targets: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            t["name"],
            t["target"],
            f"{t['value']:,.4g}" if isinstance(t["value"], float) else _fmt(t["value"]),
            {True: "**met**", False: "**MISSED**", None: "not measured"}[t["met"]],
            t["detail"],
        ]
        for t in targets
    ]
    return ["## Targets", "", *_table(["target", "goal", "measured", "", "figures"], rows)]


def _other_backend(other: dict[str, Any] | None) -> str:
    if not other:
        return ""
    rate = _fmt(other["reviews_per_s"])
    return f" (on {other['backend']}: {rate} reviews/s at {other['threads']} thread(s))"


def _offline_lines(off: dict[str, Any]) -> list[str]:
    ceil = off["ceiling"]
    lines = [
        "## Offline ceiling (in-process, no HTTP)",
        "",
        f"`Predictor.predict_texts` (tokenize + length-sorted batches of {ceil['batch_size']}), "
        f"{ceil['reviews']} reviews, median of {ceil['repeats']}: "
        f"**{_fmt(ceil['reviews_per_s'])} reviews/s** "
        f"at {ceil['threads']} torch thread(s) (the server's setting). Other thread counts: "
        + ", ".join(f"{t}: {_fmt(c['reviews_per_s'])}/s" for t, c in off["ceilings_by_threads"].items())
        + f". Tokenization: {off['tokenization']['us_per_review']} µs per review "
        f"(median {off['tokenization']['median_tokens']} tokens). Backend: {off.get('backend', 'torch')}"
        + _other_backend(off.get("other_backend_ceiling"))
        + ".",
        "",
    ]
    rows = [
        [m["threads"], m["batch_size"], m["order"], m["reviews_per_s"], m["ms_per_batch"], m["ms_per_review"]]
        for m in off["model"]
    ]
    return lines + _table(
        ["threads", "batch", "order", "reviews/s (model only)", "ms/batch", "ms/review"], rows
    )


def _served_lines(served: dict[str, Any]) -> list[str]:
    if "skipped" in served:
        return ["## Served", "", f"Skipped: {served['skipped']}", ""]
    gen = served["generator"]
    lines = [
        "## Served (`python -m service`, one review per request, default settings)",
        "",
        *_table(LEVEL_HEADER, _level_rows(served["levels"])),
        f"Load generator: **{gen['chosen']}**"
        + (" (forced with --generator)." if gen.get("forced") else " (C, one thread: every figure).")
        + " Its CPU per request is in the table's generator column.",
        f" HTTP floor: GET /health at c=1 p50 "
        f"{served.get('health_c1', {}).get('latency_ms', {}).get('p50')} ms.",
        "",
    ]
    return lines


def _side_by_side_lines(results: dict[str, Any]) -> list[str]:
    """The service, its peers and the offline figures in one table (same run, same reviews)."""
    from bench.analysis import level

    def cells(rows: list[dict[str, Any]]) -> list[Any]:
        hi, lo = level(rows, 64), level(rows, 1)
        return [
            hi["throughput_rps"] if hi else None,
            f"{hi['latency_ms']['p50']} / {hi['latency_ms']['p99']}" if hi else None,
            lo["latency_ms"]["p50"] if lo else None,
            hi.get("server_peak_rss_mb") if hi else None,
        ]

    offline = results.get("offline", {})
    rows: list[list[Any]] = []
    for t, c in offline.get("ceilings_by_threads", {}).items():
        name = f"offline `Predictor`, 1 process x {t} thread(s)"
        rows.append([name, c["reviews_per_s"], "", "", ""])
    other = offline.get("other_backend_ceiling")
    if other:
        name = f"offline `Predictor` on {other['backend']}, 1 process x {other['threads']} thread(s)"
        rows.append([name, other["reviews_per_s"], "", "", ""])
    if offline.get("ceiling_processes"):
        multi = offline["ceiling_processes"]
        name = f"offline `Predictor`, {multi['processes']} processes x 1 thread"
        rows.append([name, multi["reviews_per_s"], "", "", ""])
    served = results.get("served", {})
    if served.get("levels"):
        rows.append(["**this service, defaults**", *cells(served["levels"])])
    names = {
        "litserve": "LitServe",
        "fastapi": "plain FastAPI, one model call per request",
        "floor": "HTTP floor: bare ASGI app, no model, one uvicorn worker per CPU",
        "bare": "bare batched app: tokenize + batches of the model, no contract, one worker per CPU",
    }
    peers = results.get("peers", {})
    for system, peer in peers.items():
        kind = system.split("/")[0]
        if "/" not in system and kind not in REFERENCES:
            continue  # the better setting, already a row of its own
        settings = peer.get("settings", {})
        label = names.get(kind, kind)
        if kind == "litserve" and "version" in settings:
            label += f" {settings['version']} (batch {settings['max_batch_size']}, "
            label += f"{1e3 * settings['batch_timeout_s']:g} ms, workers_per_device={settings['workers']})"
        elif kind == "fastapi" and settings:
            label += f" (uvicorn --workers {settings['workers']})"
        if peers.get(kind, {}).get("setting") == system:
            label = f"{label}, the better setting"
        skipped = [peer.get("skipped"), "", "", ""]
        rows.append([label, *(cells(peer["levels"]) if "levels" in peer else skipped)])
    header = [
        "system",
        "req/s (reviews/s) at c=64",
        "p50 / p99 ms at c=64",
        "p50 ms at c=1",
        "memory MB (PSS) at c=64",
    ]
    return ["## Side by side (same run, same reviews)", "", *_table(header, rows)]


def _policy_lines(policy: dict[str, Any]) -> list[str]:
    if "skipped" in policy:
        return ["## Batching policy", "", f"Skipped: {policy['skipped']}", ""]
    levels = sorted({r["concurrency"] for p in policy["policies"] for r in p["levels"]})
    header = ["policy", *[f"c={c} req/s (p50 ms)" for c in levels]]
    rows = []
    for p in policy["policies"]:
        by_c = {r["concurrency"]: r for r in p["levels"]}
        cells = [
            f"{_fmt(by_c[c]['throughput_rps'])} ({_fmt(by_c[c]['latency_ms']['p50'], 2)})"
            + (f" {by_c[c]['errors']} err" if by_c[c]["errors"] else "")
            if c in by_c
            else "–"
            for c in levels
        ]
        rows.append([p["policy"] + (" (default)" if p.get("default") else ""), *cells])
    lines = ["## Batching policy (MAX_BATCH_SIZE, MAX_WAIT_MS, TORCH_THREADS)", "", *_table(header, rows)]
    win = policy.get("winners", {})
    if win:
        rec = win["recommended"]
        lines += [
            f"- Best at c=64: {win['best_c64']['policy']} ({_fmt(win['best_c64']['throughput_rps'])} req/s)",
            f"- Best at c=1: {win['best_c1']['policy']} (p50 {win['best_c1']['p50_ms']} ms)",
            f"- **Recommended defaults: MAX_BATCH_SIZE={rec['max_batch_size']} MAX_WAIT_MS="
            f"{rec['max_wait_ms']:g} TORCH_THREADS={rec['torch_threads']}** ({rec['rule']})",
            "",
        ]
    return lines


def _startup_lines(startup: dict[str, Any], image: dict[str, Any]) -> list[str]:
    if "skipped" in startup:
        return ["## Start-up and size", "", f"Skipped: {startup['skipped']}", ""]
    rows = [[i + 1, r["listening_s"], r["ready_s"], r["idle_rss_mb"]] for i, r in enumerate(startup["runs"])]
    return [
        "## Start-up and size",
        "",
        *_table(["start", "first answer s", "/health 200 s", "idle RSS MB"], rows),
        f"Image size: {_fmt(image.get('size_mb'))} MB ({image.get('source', 'not measured')}).",
        "",
    ]


def _explain_lines(ex: dict[str, Any]) -> list[str]:
    if "skipped" in ex:
        return ["## Cost of an explanation", "", f"Skipped: {ex['skipped']}", ""]
    rows = [
        [
            k,
            ex[k]["throughput_rps"],
            ex[k]["latency_ms"]["p50"],
            ex[k]["latency_ms"]["p99"],
            ex[k]["server_cpu_ms_per_request"],
            ex[k]["errors"],
        ]
        for k in ("plain", "explain")
    ]
    return [
        '## Cost of an explanation (`"explain": true`, typical reviews, c=1)',
        "",
        *_table(["request", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"], rows),
        f"Explained / plain: p50 ×{ex['p50_ratio']} (+{ex['extra_ms_p50']} ms), CPU ×{ex['cpu_ratio']}.",
        "",
    ]


def _sentences_lines(se: dict[str, Any]) -> list[str]:
    rows = [
        [k, se[k]["throughput_rps"], se[k]["latency_ms"]["p50"], se[k]["server_cpu_ms_per_request"],
         se[k]["errors"]]
        for k in ("plain", "sentences")
    ]
    return [
        '## Cost of sentences (`"sentences": true`, reviews of about 20 sentences, c=1)',
        "",
        *_table(["request", "req/s", "p50 ms", "server CPU ms/req", "errors"], rows),
        f"Sentence by sentence / plain: server CPU ×{se['cpu_ratio']}, p50 ×{se['p50_ratio']}.",
        "",
    ]


def _breakdown_lines(bd: dict[str, Any], profile: dict[str, Any]) -> list[str]:
    lines = ["## Where the time goes", ""]
    c1 = bd.get("c1")
    if c1:
        lines += [
            f"Concurrency 1, mean latency {c1['client_mean_ms']} ms (batch {c1['mean_batch_size']}):",
            "",
            *_table(["part", "ms"], [[k, v] for k, v in c1["parts_ms"].items()]),
        ]
    hi = bd.get("loaded")
    if hi:
        lines += [
            f"Concurrency {hi['concurrency']}: server CPU {hi['server_cpu_ms_per_request']} ms per request "
            f"({hi['server_cores_busy']} cores busy), mean batch {_fmt(hi['mean_batch_size'])}, "
            f"model {hi['model_ms_per_call']} ms per call = {hi['model_ms_per_review']} ms per review, "
            f"queue wait {hi['queue_wait_ms']} ms.",
            "",
        ]
        if "cpu_ms_per_request_by_bucket" in hi:
            lines += _table(
                ["bucket (py-spy samples)", "CPU ms/request"],
                [[k, v] for k, v in hi["cpu_ms_per_request_by_bucket"].items()],
            )
    if profile and "top_self" in profile:
        lines += [
            f"Top functions by own time (py-spy, {profile['samples']} samples "
            f"at c={profile['concurrency']}):",
            "",
            *_table(
                ["function", "share"],
                [[f["function"], f"{100 * f['share']:.1f}%"] for f in profile["top_self"][:12]],
            ),
        ]
    elif profile:
        lines += [f"No profile: {profile.get('skipped')}", ""]
    return lines


def _ms_list(parts: dict[str, Any] | None) -> str:
    if not parts:
        return "no figures"
    return "; ".join(f"{k} {_fmt(v)} ms" for k, v in parts.items())


def missed_notes(results: dict[str, Any]) -> list[str]:
    """For each missed target, the figures that say where the time goes."""
    notes = []
    off, bd = results.get("offline", {}), results.get("breakdown", {})
    for t in results.get("targets", []):
        if t["met"] is not False:
            continue
        name = t["name"]
        if name.startswith("offline ceiling"):
            model = [m for m in off.get("model", []) if m["order"] == "sorted"]
            best = max(model, key=lambda m: m["reviews_per_s"], default=None)
            notes.append(
                f"- {name}: tokenization {off['tokenization']['us_per_review']} µs/review; the model call "
                f"is the rest: best model-only rate {best and best['reviews_per_s']} reviews/s "
                f"(batch {best and best['batch_size']}, {best and best['ms_per_review']} ms/review) — "
                "the recurrence is sequential over ~median-length steps per direction."
            )
        elif name.startswith("served"):
            hi = bd.get("loaded", {})
            idle = (
                " (under one core: the server waited, for batch-mates or for a CPU another process held)"
                if float(hi.get("server_cores_busy") or 0) < 0.9
                else ""
            )
            notes.append(
                f"- {name}: at c={hi.get('concurrency')} the server spends "
                f"{hi.get('server_cpu_ms_per_request')} ms CPU per request, "
                f"{hi.get('server_cores_busy')} of {results['meta'].get('cores')} cores busy{idle}; model "
                f"{hi.get('model_ms_per_review')} ms/review at mean batch {_fmt(hi.get('mean_batch_size'))}; "
                f"by bucket: {_ms_list(hi.get('cpu_ms_per_request_by_bucket'))}."
            )
        elif name.startswith("p50"):
            notes.append(f"- {name}: mean latency split: {_ms_list(bd.get('c1', {}).get('parts_ms'))}")
        else:
            notes.append(f"- {name}: {t['detail']}")
    return ["## Where the missed targets lose time", "", *notes, ""] if notes else []


def _safe(fn: Any, *args: Any) -> list[str]:
    """A section's lines, or a note if its results are incomplete (e.g. after a failed run)."""
    try:
        return list(fn(*args))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        logger.warning("markdown: %s not rendered (%r)", fn.__name__, exc)
        return [f"_({fn.__name__.strip('_').replace('_lines', '')}: incomplete results, {exc!r})_", ""]


def write_markdown(results: dict[str, Any], out: Path, plots: list[Path]) -> Path:
    lines = [
        "# Benchmark results",
        "",
        *_safe(_meta_lines, results["meta"]),
        *_safe(_targets_lines, results.get("targets", [])),
        *_safe(missed_notes, results),
    ]
    lines += [*(f"![{p.stem}]({p.name})" for p in plots), ""]
    sections: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("offline", _offline_lines, (results.get("offline"),)),
        ("served", _served_lines, (results.get("served"),)),
        ("peers", _side_by_side_lines, (results,)),
        ("policy", _policy_lines, (results.get("policy"),)),
        ("explain", _explain_lines, (results.get("explain"),)),
        ("sentences", _sentences_lines, (results.get("sentences"),)),
        ("startup", _startup_lines, (results.get("startup"), results.get("image", {}))),
        ("breakdown", _breakdown_lines, (results.get("breakdown"), results.get("profile", {}))),
    ]
    for key, fn, args in sections:
        if key in results:
            lines += _safe(fn, *args)
    if results["meta"].get("error"):
        lines += ["## Run failed", "", f"`{results['meta']['error']}`", ""]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib not installed: no plots")
        return []
    from bench import plots

    made = []
    for fn in (plots.throughput, plots.latency, plots.policy, plots.breakdown):
        path = fn(results, out, plt)
        if path is not None:
            made.append(path)
    return made


def machine() -> dict[str, Any]:
    """The machine, the code and how busy it was when a run started (for every result file)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    load1 = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    busy = load1 > 0.5 * cores
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": commit or None,
        "load_average_start": round(load1, 2),
        "warnings": [f"machine busy at start (load average {load1:.1f} on {cores} cores): figures "
                     "are noisy"] if busy else [],
    }
