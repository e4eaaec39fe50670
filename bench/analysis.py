"""Derived figures: where a request's time goes, policy winners and the targets (met or missed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TARGETS = {
    "served_fraction_c64": 0.80,  # served throughput at c=64 / best offline figure, all cores
    "vs_litserve_c64": 2.0,  # served throughput at c=64 / LitServe's better setting, same run
    "p99_vs_litserve_c64": 1.0,  # served p99 at c=64 / that LitServe setting's
    "p50_vs_fastapi_c1": 0.85,  # served p50 at c=1 / the plain app's better setting
    "ceiling_reviews_per_s": 1000.0,
    "p50_ms_c1": 5.0,
    "startup_s": 5.0,
    "rss_mb": 600.0,
}


def level(rows: Sequence[dict[str, Any]], concurrency: int) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("concurrency") == concurrency), None)


def _hist_mean_ms(row: dict[str, Any], role: str) -> float | None:
    hist = row.get("server_histograms", {}).get(role)
    return round(1e3 * float(hist["mean"]), 3) if hist else None


def breakdown_c1(row: dict[str, Any], tokenize_us: float | None) -> dict[str, Any]:
    """Mean latency at concurrency 1 split with the server's histograms and in-process timings
    (tokenization from the offline section; without it, it stays in the app's share)."""
    client = float(row["latency_ms"]["mean"])
    server = _hist_mean_ms(row, "request_s")
    queue = _hist_mean_ms(row, "queue_wait_s") or 0.0
    model = _hist_mean_ms(row, "inference_s") or 0.0
    batch = row.get("server_histograms", {}).get("batch_size", {}).get("mean")
    tokenize = round(tokenize_us / 1e3, 3) if tokenize_us else None
    app = "app: routing, body, validation, JSON, logging, metrics" + ("" if tokenize else ", tokenization")
    parts: dict[str, float | None] = {
        "client, loopback, uvicorn outside the app (client mean - server request mean)": (
            round(client - server, 3) if server is not None else None
        ),
        app + " (rest of server time)": (
            round(server - queue - model - (tokenize or 0.0), 3) if server is not None else None
        ),
        "tokenization (in-process timing of the same reviews)": tokenize,
        "queue wait (server histogram)": queue,
        "model call (server histogram)": model,
    }
    return {
        "concurrency": 1,
        "client_mean_ms": client,
        "server_request_mean_ms": server,
        "mean_batch_size": batch,
        "parts_ms": parts,
    }


def breakdown_loaded(row: dict[str, Any], profile: dict[str, Any] | None) -> dict[str, Any]:
    """At high concurrency: server CPU per request by profile bucket, and the batcher's figures."""
    batch = row.get("server_histograms", {}).get("batch_size", {}).get("mean")
    model = _hist_mean_ms(row, "inference_s")
    out: dict[str, Any] = {
        "concurrency": row["concurrency"],
        "server_cpu_ms_per_request": row["server_cpu_ms_per_request"],
        "server_cores_busy": row["server_cores_busy"],
        "mean_batch_size": batch,
        "model_ms_per_call": model,
        "model_ms_per_review": round(model / batch, 3) if model and batch else None,
        "queue_wait_ms": _hist_mean_ms(row, "queue_wait_s"),
    }
    if profile and "cpu_ms_per_request_by_bucket" in profile:
        out["cpu_ms_per_request_by_bucket"] = profile["cpu_ms_per_request_by_bucket"]
    return out


def policy_winners(policy_rows: Sequence[dict[str, Any]], tolerance: float = 0.05) -> dict[str, Any]:
    """Best throughput at c=64, best p50 at c=1, and a recommended default: within `tolerance` of
    the best c=64 throughput, the lowest c=1 p50."""
    scored = []
    for p in policy_rows:
        hi, lo = level(p["levels"], 64), level(p["levels"], 1)
        if hi and lo:
            scored.append((p, float(hi["throughput_rps"]), float(lo["latency_ms"]["p50"])))
    if not scored:
        return {}
    best_hi = max(scored, key=lambda s: s[1])
    best_lo = min(scored, key=lambda s: s[2])
    near = [s for s in scored if s[1] >= (1 - tolerance) * best_hi[1]]
    pick = min(near, key=lambda s: s[2])
    keys = ("max_batch_size", "max_wait_ms", "torch_threads")
    return {
        "best_c64": {"policy": best_hi[0]["policy"], "throughput_rps": best_hi[1]},
        "best_c1": {"policy": best_lo[0]["policy"], "p50_ms": best_lo[2]},
        "recommended": {
            **{k: pick[0][k] for k in keys},
            "policy": pick[0]["policy"],
            "throughput_rps_c64": pick[1],
            "p50_ms_c1": pick[2],
            "rule": f"within {tolerance:.0%} of the best c=64 throughput, lowest c=1 p50",
        },
    }


def _target(
    name: str, value: float | None, limit: float, higher_is_better: bool, unit: str, detail: str = ""
) -> dict[str, Any]:
    met = None if value is None else (value >= limit if higher_is_better else value <= limit)
    sign = ">=" if higher_is_better else "<="
    return {"name": name, "target": f"{sign} {limit:g}{unit}", "value": value, "met": met, "detail": detail}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    offline = results.get("offline", {})
    served = results.get("served", {})
    ceiling = offline.get("ceiling", {}).get("reviews_per_s")
    best = offline.get("best") or offline.get("ceiling", {})
    rows = served.get("levels", [])
    c64, c1 = level(rows, 64), level(rows, 1)
    out = []
    frac = None
    if c64 and best.get("reviews_per_s"):
        frac = round(float(c64["throughput_rps"]) / float(best["reviews_per_s"]), 3)
    how = f"{best.get('processes', 1)} process(es) x {best.get('threads')} thread(s)"
    out.append(
        _target(
            "served throughput at c=64 / best offline figure on all cores",
            frac,
            TARGETS["served_fraction_c64"],
            True,
            "",
            f"{c64['throughput_rps']} req/s served vs {best.get('reviews_per_s')} reviews/s "
            f"offline ({how})"
            if frac is not None
            else "needs c=64 and the offline section",
        )
    )
    out += peer_targets(results.get("peers", {}), c1, c64)
    out.append(
        _target(
            "offline ceiling (reviews/s)",
            ceiling,
            TARGETS["ceiling_reviews_per_s"],
            True,
            "",
            f"{offline.get('ceiling', {}).get('threads')} torch thread(s), "
            f"batch {offline.get('ceiling', {}).get('batch_size')}",
        )
    )
    if c1:
        out.append(
            _target(
                "p50 latency at c=1 (ms)",
                c1["latency_ms"]["p50"],
                TARGETS["p50_ms_c1"],
                False,
                " ms",
                ("real" if results.get("meta", {}).get("data", {}).get("real") else "GENERATED")
                + " reviews, rotating: the median over them is a typical review; typical-length only: "
                + f"{results.get('explain', {}).get('plain', {}).get('latency_ms', {}).get('p50')} ms",
            )
        )
    start = results.get("startup", {})
    if start.get("ready_s_median") is not None:
        out.append(
            _target(
                "start-up to /health 200 (s)",
                start["ready_s_median"],
                TARGETS["startup_s"],
                False,
                " s",
                f"median of {len(start.get('runs', []))} starts",
            )
        )
    peak = max((float(r["server_peak_rss_mb"]) for r in rows), default=None)
    idle = start.get("idle_rss_mb_median")
    rss = max(v for v in (peak, idle) if v is not None) if (peak or idle) else None
    out.append(
        _target(
            "memory of all processes (MB PSS, max of idle and under load)",
            rss,
            TARGETS["rss_mb"],
            False,
            " MB",
            f"idle {idle} MB, peak under load {peak} MB",
        )
    )
    return out


def ratio(a: float, b: float) -> float:
    """a / b to 3 decimals; infinite when b is 0 (a peer that answered nothing)."""
    return round(a / b, 3) if b else float("inf")


def peer_targets(
    peers: dict[str, Any], c1: dict[str, Any] | None, c64: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The service against LitServe (c=64) and plain FastAPI (c=1), same run, same reviews."""
    lit = level(peers.get("litserve", {}).get("levels", []), 64)
    plain = level(peers.get("fastapi", {}).get("levels", []), 1)

    out = []
    if c64 and lit:
        out.append(
            _target(
                "served throughput at c=64 / LitServe's",
                ratio(float(c64["throughput_rps"]), float(lit["throughput_rps"])),
                TARGETS["vs_litserve_c64"],
                True,
                "x",
                f"{c64['throughput_rps']} vs {lit['throughput_rps']} req/s",
            )
        )
        out.append(
            _target(
                "p99 at c=64 / LitServe's",
                ratio(float(c64["latency_ms"]["p99"]), float(lit["latency_ms"]["p99"])),
                TARGETS["p99_vs_litserve_c64"],
                False,
                "x",
                f"{c64['latency_ms']['p99']} vs {lit['latency_ms']['p99']} ms",
            )
        )
    else:
        why = peers.get("litserve", {}).get("skipped") or (
            "needs c=64 for the service and LitServe" if peers else "peers section not run"
        )
        name = "served throughput at c=64 / LitServe's"
        out.append(_target(name, None, TARGETS["vs_litserve_c64"], True, "x", why))
    if c1 and plain:
        out.append(
            _target(
                "p50 at c=1 / plain FastAPI's",
                ratio(float(c1["latency_ms"]["p50"]), float(plain["latency_ms"]["p50"])),
                TARGETS["p50_vs_fastapi_c1"],
                False,
                "x",
                f"{c1['latency_ms']['p50']} vs {plain['latency_ms']['p50']} ms",
            )
        )
    return out
