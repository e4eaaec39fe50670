"""deploy/grafana/sentiment-dashboard.json: it parses, its layout is sound, and every PromQL query
names only metrics, labels and bucket bounds that a live server really exports (scraped from
`python -m service` over HTTP, after it has scored and explained a few reviews)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.server import Server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "sentiment-dashboard.json"

FUNCTIONS = {
    "abs", "avg", "avg_over_time", "ceil", "count", "count_over_time", "delta", "deriv", "floor",
    "histogram_quantile", "idelta", "increase", "irate", "max", "max_over_time",
    "min", "min_over_time", "quantile", "rate", "round", "sort", "sort_desc", "sum", "sum_over_time",
    "topk", "bottomk", "clamp_min", "clamp_max", "vector", "scalar", "time", "absent",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Grafana's variables, as a query would see them once Grafana has substituted them.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$model": ".*"}
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*")|(?P<range>\[[0-9]+[smhdwy]\])|(?P<number>[0-9]+(?:\.[0-9]+)?)"""
    r"""|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|==|>=|<=|[-+*/^%<>=(){},])|(?P<space>\s+)"""
)


@dataclass
class Query:
    """What one PromQL expression refers to."""

    metrics: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (metric, label, value)
    grouping: set[str] = field(default_factory=set)  # labels in by/without/on/ignoring (...)


def parse(expr: str) -> Query:
    """A small PromQL reader: enough to list the names an expression uses, and to reject
    unbalanced brackets or anything it does not recognise."""
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    tokens: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        match = TOKEN.match(expr, at)
        assert match is not None, f"cannot read {expr[at:at + 20]!r} in {expr!r}"
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        at = match.end()
    query = Query()
    depth = 0
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text in ("(", ")"):
            depth += 1 if text == "(" else -1
            assert depth >= 0, f"unbalanced parentheses in {expr!r}"
        elif kind == "name" and text in LABEL_LISTS and following == "(":
            close = next(j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")")
            query.grouping |= {t for k, t in tokens[i + 2 : close] if k == "name"}
            i = close
        elif kind == "name" and (following == "(" or following in ("by", "without")):
            query.functions.add(text)  # `sum by (...) (...)` is a call too
        elif kind == "name" and text not in KEYWORDS:
            query.metrics.add(text)
            if following == "{":
                close = next(j for j in range(i + 2, len(tokens)) if tokens[j][1] == "}")
                inner = [t for t in tokens[i + 2 : close] if t[1] != ","]
                assert len(inner) % 3 == 0, f"bad label matchers in {expr!r}"
                for j in range(0, len(inner), 3):
                    (k1, label), (k2, _), (k3, value) = inner[j : j + 3]
                    assert k1 == "name" and k2 == "op" and k3 == "string", f"bad matcher in {expr!r}"
                    query.matchers.append((text, label, json.loads(value)))
                i = close
        i += 1
    assert depth == 0, f"unbalanced parentheses in {expr!r}"
    return query


LABEL_VALUES = re.compile(r"label_values\((?P<expr>.+),\s*(?P<label>[A-Za-z_]\w*)\)")


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, set[str]]]:
    """(where, expression, labels it reads) for every panel target and templating query."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"], set()
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # Grafana's label_values(metric, label): a series selector and a label name.
            match = LABEL_VALUES.fullmatch(variable["definition"])
            assert match, f"variable {variable['name']}: expected label_values(...)"
            yield f"variable {variable['name']}", match["expr"], {match["label"]}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def exported(tiny_checkpoint_dir: Path) -> dict[str, dict[str, set[str]]]:
    """{sample name: {label: values seen}} from a real server's /metrics after real traffic."""
    with Server(tiny_checkpoint_dir, env={"LOG_LEVEL": "WARNING"}) as server:
        for body in (
            {"texts": ["a great film", "an awful film"]},
            {"text": "fine", "explain": True},
            {"text": "A great film. An awful ending.", "sentences": True},
        ):
            request = urllib.request.Request(
                server.url + "/predict",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        text = server.metrics_text()
    seen: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = seen.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                labels.setdefault(name, set()).add(value)
    return seen


def test_dashboard_parses_and_lays_out(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"{panel['title']!r} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        # Every query goes to the data source the user picks on import.
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def mismatches(dashboard: dict[str, Any], exported: dict[str, dict[str, set[str]]]) -> list[str]:
    """Every name a query uses that the scrape does not have."""
    found = []
    for where, expr, reads in queries(dashboard):
        query = parse(expr)
        if not query.metrics:
            found.append(f"{where}: no metric in {expr!r}")
        if unknown := query.functions - FUNCTIONS:
            found.append(f"{where}: unknown functions {unknown}")
        if missing := query.metrics - set(exported):
            found.append(f"{where}: not on /metrics: {missing}")
            continue
        labels = set().union(*(exported[m] for m in query.metrics))
        if missing := (query.grouping | reads) - labels:
            found.append(f"{where}: no such labels {missing}")
        for metric, label, value in query.matchers:
            if label not in exported[metric]:
                found.append(f"{where}: {metric} has no label {label!r}")
            elif label == "le" and value not in exported[metric]["le"]:  # a real bucket bound
                found.append(f"{where}: {metric} has no bucket le={value}")
    return found


def used_metrics(dashboard: dict[str, Any]) -> set[str]:
    return set().union(*(parse(expr).metrics for _, expr, _ in queries(dashboard)))


def test_every_query_names_what_the_server_exports(
    dashboard: dict[str, Any], exported: dict[str, dict[str, set[str]]]
) -> None:
    assert mismatches(dashboard, exported) == []
    # The dashboard covers the prediction metrics and the latency / queue / batch ones.
    for name in (
        "sentiment_predictions_total",
        "sentiment_prediction_confidence_bucket",
        "sentiment_input_tokens_bucket",
        "sentiment_http_request_duration_seconds_bucket",
        "sentiment_queue_depth",
        "sentiment_queue_wait_seconds_bucket",
        "sentiment_batch_size_sum",
        "sentiment_texts_read_total",
    ):
        assert name in used_metrics(dashboard), f"the dashboard does not show {name}"
    # The tiny checkpoint cannot read "fine" (it knows ~30 words): both outcomes were exported.
    assert {"scored", "flagged"} <= exported["sentiment_texts_read_total"]["outcome"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sentiment_predictions_total{", "sentiment_prediction_total{"),  # misspelt metric
        ("sum by (model, label)", "sum by (model, sentiment)"),  # label it does not have
        ('le="0.7"', 'le="0.72"'),  # bucket bound it does not have
        ('route="/predict"', 'path="/predict"'),  # matcher on a missing label
        ("sum by (language, outcome)", "sum by (lang, outcome)"),  # the language counter's labels
    ],
)
def test_a_wrong_name_is_caught(
    dashboard: dict[str, Any], exported: dict[str, dict[str, set[str]]], old: str, new: str
) -> None:
    text = json.dumps(dashboard)
    assert old.replace('"', '\\"') in text
    broken = json.loads(text.replace(old.replace('"', '\\"'), new.replace('"', '\\"')))
    assert mismatches(broken, exported)


@pytest.mark.parametrize(
    "bad",
    [
        "sum(rate(sentiment_predictions_total[5m])",  # unbalanced
        'sentiment_predictions_total{label=positive}',  # unquoted value
        "sentiment_predictions_total @ 5",  # not PromQL this reader knows
    ],
)
def test_the_reader_rejects_broken_queries(bad: str) -> None:
    with pytest.raises(AssertionError):
        parse(bad)


def test_the_reader_lists_names() -> None:
    query = parse(
        'sum by (model, label) (rate(sentiment_predictions_total{model=~"$model"}[$__rate_interval]))'
        ' / ignoring (label) group_left sum by (model) (increase(other_total[1h]))'
    )
    assert query.metrics == {"sentiment_predictions_total", "other_total"}
    assert query.functions == {"sum", "rate", "increase"}
    assert query.grouping == {"model", "label"}
    assert query.matchers == [("sentiment_predictions_total", "model", ".*")]
