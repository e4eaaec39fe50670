"""The model card's validation tables, from a checkpoint's own record of its validation:
python -m model.card [--checkpoint DIR] > tables.md

Training writes every figure into `config.json` (`metrics`); this renders them as Markdown, so
the model card is refreshed from the files it describes instead of copied by hand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from model.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from model.metrics import LENGTH_BANDS


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def source_table(metrics: dict[str, Any]) -> list[str]:
    """One row per validation set: n, classes, accuracy, macro-F1, macro recall, ECE."""
    lines = [
        "| validation set | n | classes | accuracy % | macro-F1 | macro recall | ECE % "
        "| ECE % cross-fitted |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in metrics["by_source"].items():
        classes = "/".join(c[:3] for c in row.get("classes", [])) or "all"
        lines.append(
            f"| {name} | {row['n']:,} | {classes} | {_pct(row['accuracy'])} | {row['f1']:.3f} | "
            f"{row.get('recall', float('nan')):.3f} | {_pct(row['ece'])} | "
            f"{_pct(row.get('ece_cross_fitted', float('nan')))} |"
        )
    return lines


def length_table(metrics: dict[str, Any]) -> list[str]:
    """Accuracy and ECE per validation set and length band (tokens before truncation)."""
    bands = [name for name, _, _ in LENGTH_BANDS]
    lines = [
        "| validation set | " + " | ".join(f"{b} tokens" for b in bands) + " |",
        "|---|" + "---|" * len(bands),
    ]
    for name, row in metrics["by_source"].items():
        cells = []
        for band in bands:
            sub = row.get("by_length", {}).get(band)
            cells.append(
                f"n={sub['n']:,}: {_pct(sub['accuracy'])}%, ECE {_pct(sub['ece'])}%" if sub else "—"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def domain_table(metrics: dict[str, Any]) -> list[str]:
    """Accuracy and ECE per domain, for the sets that carry one."""
    lines = ["| validation set | domain | n | accuracy % | macro-F1 | ECE % |",
             "|---|---|---:|---:|---:|---:|"]
    for name, row in metrics["by_source"].items():
        for domain, sub in row.get("by_domain", {}).items():
            lines.append(
                f"| {name} | {domain} | {sub['n']:,} | {_pct(sub['accuracy'])} | {sub['f1']:.3f} | "
                f"{_pct(sub['ece'])} |"
            )
    return lines


def render(ckpt: Checkpoint) -> str:
    metrics = ckpt.metrics
    parts = [
        f"Validation of `{ckpt.model_id}` (labels {', '.join(ckpt.labels)}; temperature "
        f"{ckpt.temperature:.3f}), from its `config.json`:",
        "",
        *source_table(metrics),
        "",
        "Per length band:",
        "",
        *length_table(metrics),
    ]
    domains = domain_table(metrics)
    if len(domains) > 2:  # more than the header and its rule
        parts += ["", "Per domain:", "", *domains]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.card", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint dir (default: shipped model)")
    args = p.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(render(ckpt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
