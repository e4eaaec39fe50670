"""The PNGs that RESULTS.md and the README show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.analysis import TARGETS


def _levels(results: dict[str, Any]) -> list[dict[str, Any]]:
    return list(results.get("served", {}).get("levels", []))


def throughput(results: dict[str, Any], out: Path, plt: Any) -> Path | None:
    rows = _levels(results)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in results.get("policy", {}).get("policies", []):
        if p["levels"] and not p.get("default"):
            ax.plot(
                [r["concurrency"] for r in p["levels"]],
                [r["throughput_rps"] for r in p["levels"]],
                marker=".",
                lw=1,
                alpha=0.6,
                label=p["policy"],
            )
    ax.plot(
        [r["concurrency"] for r in rows],
        [r["throughput_rps"] for r in rows],
        marker="o",
        lw=2.5,
        color="black",
        label="served, default settings",
    )
    ceiling = results.get("offline", {}).get("ceiling", {}).get("reviews_per_s")
    if ceiling:
        ax.axhline(ceiling, color="tab:green", ls="--", label=f"offline ceiling {ceiling:.0f}/s")
        ax.axhline(
            TARGETS["served_fraction_c64"] * ceiling, color="tab:green", ls=":", label="80% of ceiling"
        )
    ax.set(
        xscale="log",
        xlabel="concurrent connections",
        ylabel="reviews/s (one per request)",
        title="Throughput vs concurrency",
    )
    ax.set_xticks([r["concurrency"] for r in rows], [str(r["concurrency"]) for r in rows])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out / "throughput.png", plt)


def latency(results: dict[str, Any], out: Path, plt: Any) -> Path | None:
    rows = _levels(results)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["concurrency"] for r in rows]
    for q in ("p50", "p95", "p99"):
        ax.plot(xs, [r["latency_ms"][q] for r in rows], marker="o", label=q)
    ax.axhline(TARGETS["p50_ms_c1"], color="grey", ls=":", label="p50 target at c=1")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="concurrent connections",
        ylabel="latency (ms)",
        title="Latency percentiles vs concurrency (default settings)",
    )
    ax.set_xticks(xs, [str(x) for x in xs])
    _plain_log_ticks(ax)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, out / "latency.png", plt)


def policy(results: dict[str, Any], out: Path, plt: Any) -> Path | None:
    pols = [p for p in results.get("policy", {}).get("policies", []) if p["levels"]]
    if not pols:
        return None
    levels = sorted({r["concurrency"] for p in pols for r in p["levels"]})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / len(pols)
    for i, p in enumerate(pols):
        by_c = {r["concurrency"]: r for r in p["levels"]}
        xs = [j + i * width for j, c in enumerate(levels) if c in by_c]
        ax1.bar(xs, [by_c[c]["throughput_rps"] for c in levels if c in by_c], width, label=p["policy"])
        ax2.bar(xs, [by_c[c]["latency_ms"]["p50"] for c in levels if c in by_c], width, label=p["policy"])
    for ax, label in ((ax1, "reviews/s"), (ax2, "p50 latency (ms)")):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(levels))], [f"c={c}" for c in levels])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    ax2.set_yscale("log")
    _plain_log_ticks(ax2)
    ax1.set_title("Throughput by batching policy")
    ax2.set_title("p50 latency by batching policy")
    ax1.legend(fontsize=7)
    return _save(fig, out / "policy.png", plt)


def breakdown(results: dict[str, Any], out: Path, plt: Any) -> Path | None:
    buckets = results.get("breakdown", {}).get("loaded", {}).get("cpu_ms_per_request_by_bucket")
    if not buckets:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.8))
    names = list(buckets)[::-1]
    ax.barh(names, [buckets[n] for n in names], color="tab:blue")
    c = results["breakdown"]["loaded"]["concurrency"]
    ax.set(xlabel="server CPU ms per request", title=f"Server CPU per request at c={c}, by py-spy samples")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, out / "breakdown.png", plt)


def _plain_log_ticks(ax: Any) -> None:
    """Log-scale y ticks written as 2, 5, 10, 20... instead of 2x10^0."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
