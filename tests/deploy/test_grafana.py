"""The Grafana provisioning and the alliance dashboard: valid, consistent, and querying only
metrics the project defines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.metric_names import (
    DECLARED_METRICS,
    ROOT,
    defined_in_code,
    known_series,
    metric_names,
)

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "verbund.yml"

# What the operations team must see at a glance (issue 4): each metric in some panel.
REQUIRED_ON_OVERVIEW = {
    "verbund_open_shortages",
    "verbund_partner_data_age_seconds",
    "verbund_events_ingested_total",
    "verbund_events_rejected_total",
    "verbund_ledger_processing_latency_seconds_bucket",
    "verbund_protocol_runs_total",
    "verbund_audit_entries_appended_total",
    "verbund_solve_seconds_bucket",
    "verbund_trigger_to_decision_seconds_bucket",
    "verbund_orders",
    "verbund_unmet_quantity",
}


def _dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: a dashboard is a JSON object"
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def _exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel.get("title", "?"), target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _datasource_uid() -> str:
    data = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    [source] = [d for d in data["datasources"] if d["type"] == "prometheus"]
    return str(source["uid"])


def test_there_is_an_alliance_overview_dashboard() -> None:
    assert (DASHBOARDS / "alliance-overview.json").is_file()
    assert _dashboards()


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard.get("uid") and dashboard.get("title")
    assert isinstance(dashboard.get("schemaVersion"), int)
    panels = _panels(dashboard)
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids), "every panel needs a numeric id"
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel.get('id')} has no title"
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, title
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{title!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = title
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {title!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {title!r} has an empty query"
            assert target.get("refId"), f"panel {title!r} has a query without refId"


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_uses_the_provisioned_datasource(path: Path) -> None:
    uid = _datasource_uid()
    for panel in _panels(_load(path)):
        for holder in [panel, *panel.get("targets", [])]:
            source = holder.get("datasource")
            if source is not None and panel["type"] != "row":
                assert source == {"type": "prometheus", "uid": uid}, panel.get("title")


@pytest.mark.parametrize("path", _dashboards(), ids=lambda p: p.name)
def test_dashboard_queries_only_defined_metrics(path: Path) -> None:
    known = known_series()
    unknown = {
        (title, name)
        for title, expr in _exprs(_load(path))
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, f"{path.name} queries metrics nobody defines: {sorted(unknown)}"


def test_overview_shows_what_the_operations_team_asked_for() -> None:
    used = {
        name
        for _, expr in _exprs(_load(DASHBOARDS / "alliance-overview.json"))
        for name in metric_names(expr)
    }
    missing = REQUIRED_ON_OVERVIEW - used
    assert not missing, f"alliance overview has no panel for {sorted(missing)}"


def test_declared_metrics_agree_with_the_code_once_it_exists() -> None:
    defined = defined_in_code()
    disagree = {
        name: (kind, defined[name])
        for name, kind in DECLARED_METRICS.items()
        if name in defined and defined[name] != kind
    }
    # prometheus_client strips "_total" from counter names
    disagree.update(
        {
            name: (kind, defined[name.removesuffix("_total")])
            for name, kind in DECLARED_METRICS.items()
            if name.removesuffix("_total") in defined
            and name.endswith("_total")
            and defined[name.removesuffix("_total")] != kind
        }
    )
    assert not disagree, f"declared (kind) vs code (kind): {disagree}"


def test_metric_names_are_read_from_the_code() -> None:
    defined = defined_in_code()
    assert defined["verbund_open_shortages"] == "gauge"  # GaugeMetricFamily, ledger
    assert defined["verbund_events_rejected"] == "counter"  # Counter, ledger
    assert defined["verbund_gateway_request_duration_seconds"] == "histogram"  # gateway


def test_metric_name_check_rejects_unknown_and_misspelled_series() -> None:
    known = known_series({"verbund_open_shortages": "gauge", "verbund_events_rejected": "counter"})
    expr = (
        "histogram_quantile(0.99, sum by (le, protocol) (rate(verbund_solve_seconds_bucket[15m])))"
        " > on (protocol) group_left max by (protocol) (verbund_protocol_review_overdue)"
        ' or sum without (material) (verbund_open_shortages{severity="critical", x=~"a|b"}) * 2'
        " + count(up == 0) or vector(0) + sum(rate(verbund_events_rejected_total[5m] offset 1h))"
    )
    assert metric_names(expr) == {
        "verbund_solve_seconds_bucket",
        "verbund_protocol_review_overdue",
        "verbund_open_shortages",
        "up",
        "verbund_events_rejected_total",
    }
    assert metric_names(expr) <= known
    for wrong in (
        "verbund_open_shortage",  # misspelled
        "verbund_open_shortages_total",  # a gauge has no _total
        "verbund_events_rejected",  # a counter is exposed as _total
        "verbund_trigger_to_decision_seconds",  # a histogram is queried by _bucket/_sum/_count
    ):
        assert metric_names(f"sum(rate({wrong}[5m]))") == {wrong}
        assert wrong not in known, wrong


def test_dashboard_provider_puts_dashboards_in_the_verbund_folder() -> None:
    data = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))
    [provider] = data["providers"]
    assert provider["folder"] == "Verbund"
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_datasource_points_at_the_compose_prometheus() -> None:
    data = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    [source] = data["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True
