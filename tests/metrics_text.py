"""Reading the service's Prometheus exposition in tests: one parser (prometheus_client's own) for
every test that counts what /metrics says."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """{(sample name, labels): value} from Prometheus text."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def total(values: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples that carry `labels` (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and wanted <= ls)


def scraped(url: str, name: str, **labels: str) -> float:
    """`total` of a live server's /metrics."""
    return total(samples(httpx.get(f"{url}/metrics", timeout=10).text), name, **labels)
