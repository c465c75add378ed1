"""Metric names the project defines, and the metric names a PromQL expression uses.

Defined names are collected from the code (prometheus_client ``Counter``/``Gauge``/
``Histogram``/``Summary`` and ``*MetricFamily`` definitions under ``services/``) plus the
names declared below for services that are being written now. Dashboards and alert rules
may only use these.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

# Metrics of services in progress (issue 4): the coordinator's. Accepted before their code
# exists; once defined in services/, the code is the source (and must agree on the kind).
# (The audit service's metrics are in the code: verbund_audit_entries_appended_total{kind},
# verbund_audit_consumer_lag{topic}, ...; the earlier planned names are not accepted.)
DECLARED_METRICS: dict[str, str] = {
    "verbund_protocol_runs_total": "counter",  # labels: protocol, status
    "verbund_solve_seconds": "histogram",  # label: protocol
    "verbund_trigger_to_decision_seconds": "histogram",
    "verbund_orders": "gauge",  # label: state
    "verbund_unmet_quantity": "gauge",  # label: tier
    "verbund_protocol_review_overdue": "gauge",  # label: protocol
}

# Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_KINDS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
    "SummaryMetricFamily": "summary",
}
_DEFINITION = re.compile(
    r"\b(" + "|".join(_KINDS) + r")\(\s*(?:name\s*=\s*)?[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']"
)


def defined_in_code(root: Path = SERVICES) -> dict[str, str]:
    """``{base name: kind}`` of every metric defined in the Python files under ``root``."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for kind, name in _DEFINITION.findall(path.read_text(encoding="utf-8")):
            found[name] = _KINDS[kind]
    return found


def exposed_names(base: str, kind: str) -> set[str]:
    """The series names a metric appears under in the Prometheus exposition format."""
    if kind == "counter":
        stem = base.removesuffix("_total")
        return {f"{stem}_total", f"{stem}_created"}
    if kind == "histogram":
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
    if kind == "summary":
        return {base, f"{base}_sum", f"{base}_count", f"{base}_created"}
    return {base}


def known_series(defined: dict[str, str] | None = None) -> set[str]:
    """Every series name a dashboard or rule may query."""
    metrics = {**DECLARED_METRICS, **(defined if defined is not None else defined_in_code())}
    names: set[str] = set(PROMETHEUS_SERIES)
    for base, kind in metrics.items():
        names |= exposed_names(base, kind)
    return names


_FUNCTIONS_AND_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
        "and", "or", "unless", "offset", "atan2", "inf", "nan",
    }
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for name, call in _IDENT.findall(text):
        if call or name.lower() in _FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):  # durations such as offset 5m
            continue
        names.add(name)
    return names
