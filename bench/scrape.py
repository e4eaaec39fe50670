"""The server's Prometheus histograms (queue wait, inference time, batch size...), as deltas
between two scrapes of /metrics: mean per observation over a load run."""

from __future__ import annotations

import re
from collections import defaultdict

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfINFNa]+)")

# Which histogram answers which question, by name (first match wins); the service's names may vary.
ROLES = {
    "queue_wait_s": re.compile(r"queue.*(wait|seconds)|wait.*seconds", re.IGNORECASE),
    "inference_s": re.compile(r"(inference|model|batch).*seconds|infer", re.IGNORECASE),
    "batch_size": re.compile(r"batch.*size|batch_reviews|reviews.*batch", re.IGNORECASE),
    "request_s": re.compile(r"request.*(duration|latency|seconds).*route=\"/predict\"", re.IGNORECASE),
    "tokenize_s": re.compile(r"token.*seconds|encode.*seconds", re.IGNORECASE),
}


def histograms(text: str) -> dict[str, dict[str, float]]:
    """{family: {"sum": s, "count": n}} for every histogram/summary, summed over label sets, and
    {family{labels}: ...} per label set."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"sum": 0.0, "count": 0.0})
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        for suffix in ("_sum", "_count"):
            if name.endswith(suffix):
                family = name[: -len(suffix)]
                out[family][suffix[1:]] += value
                if labels:
                    out[family + labels][suffix[1:]] += value
    return {k: v for k, v in out.items() if v["count"] or v["sum"]}


def delta(before: str, after: str) -> dict[str, dict[str, float]]:
    """Per family: observations, sum and mean between the two scrapes."""
    h0, h1 = histograms(before), histograms(after)
    result = {}
    for name, now in h1.items():
        was = h0.get(name, {"sum": 0.0, "count": 0.0})
        count = now["count"] - was["count"]
        total = now["sum"] - was["sum"]
        if count > 0:
            result[name] = {"count": count, "sum": round(total, 6), "mean": round(total / count, 6)}
    return result


def by_role(deltas: dict[str, dict[str, float]]) -> dict[str, dict[str, object]]:
    """The histogram that answers each role in ROLES, with its family name."""
    found: dict[str, dict[str, object]] = {}
    for role, pattern in ROLES.items():
        for name in sorted(deltas):
            if pattern.search(name) and name not in {str(f["family"]) for f in found.values()}:
                found[role] = {"family": name, **deltas[name]}
                break
    return found
