"""Decision summaries need-to-know: per-tier figures, explanations and failed runs' details.

A tier's requested or unmet quantity is one partner's own figure when that partner is alone in
its tier, and an infeasible decision's explanation names quantities ("requires 500 pcs; at most
100 pcs are available"). Coordinators see all of it; operators and auditors only what the
k-partner rule of the aggregates allows (services/common/aggregates.py), and generic texts
naming the status instead of explanations. Partners see no decision summaries at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from protocols.run import solve
from schemas.protocol import Protocol
from services.common.aggregates import (
    generic_explanation,
    generic_run_detail,
    group_figures,
)
from services.common.topics import DECISIONS, RUNS
from services.console.api import SERVICE_KEY
from services.console.views import decisions_view, runs_view
from services.coordinator.core import Coordinator, Publish, Run
from tests.protocols.helpers import protocol, scenario
from tests.unit.access_apps import AppClient, build, row_of

NOW = 1_800_000_000.0
SECRETS = (
    "500 pcs",
    "100 pcs",
    "requires",
    "near",
    "hosp",
)  # figures and partner ids of the infeasible run


def infeasible_protocol() -> Protocol:
    """Tier 1 must be filled completely: with 100 pcs to give and 500 needed, infeasible."""
    return protocol(min_fill=[{"tier": 1, "fraction": 1.0}]).model_copy(update={"id": "must-fill"})


def infeasible_scenario() -> Any:
    return scenario([("near", 300.0, 100.0, 0.5, 10.0)], [("hosp", 1, 500.0, 10.1)])


def one_needy_scenario() -> Any:
    """One hospital needs 100 (tier 1); two donors can give 100 each."""
    donors = [("near", 300.0, 100.0, 0.5, 10.0), ("far", 300.0, 100.0, 0.5, 14.0)]
    return scenario(donors, [("hosp", 1, 100.0, 10.1)])


def tiered_scenario() -> Any:
    """Tier 1: three partners (10 each), tier 2: one partner (77), tier 3: four (5 each);
    enough stock for everyone (200 pcs to give)."""
    donors = [("near", 300.0, 100.0, 0.5, 10.0), ("far", 300.0, 100.0, 0.5, 14.0)]
    needs = [(f"t1-{i}", 1, 10.0, 10.1) for i in range(3)] + [("solo", 2, 77.0, 10.2)]
    needs += [(f"t3-{i}", 3, 5.0, 10.3) for i in range(4)]
    return scenario(donors, needs)


def decide(core: Coordinator, proto: Protocol, data: Any) -> tuple[Run, list[Publish]]:
    """Trigger ``proto`` and take its decision on ``data``: the run and every message."""
    core.protocols[proto.id] = proto
    core.active_scopes.clear()
    run, _, messages = core.trigger(proto.id, "manual", NOW)
    result = solve(proto, data, run_id=run.run_id)
    messages += core.solved(run.run_id, result, 0.01, NOW + 1)
    core.published(run.run_id, run.revision)
    return run, messages


def solver_error(core: Coordinator) -> tuple[Run, list[Publish]]:
    proto = protocol().model_copy(update={"id": "crashes"})
    core.protocols[proto.id] = proto
    core.active_scopes.clear()
    run, _, messages = core.trigger(proto.id, "manual", NOW)
    messages += core.failed(run.run_id, "hosp needs 500, near has 100", NOW + 1)
    return run, messages


# -- the rules (pure) -------------------------------------------------------------------------
def test_group_figures_suppress_small_tiers_and_a_complement() -> None:
    rows = [("1", f"a{i}", {"requested": 10.0, "unmet": 0.0}) for i in range(3)]
    rows += [("2", "solo", {"requested": 77.0, "unmet": 7.0})]
    rows += [("3", f"c{i}", {"requested": 5.0, "unmet": 1.0}) for i in range(4)]
    figures = group_figures(rows, 3)
    # tier 2 is one partner's; alone suppressed, the total minus tiers 1 and 3 would give it
    assert figures["2"] is None and figures["1"] is None
    assert figures["3"] == {"requested": 20.0, "unmet": 4.0}
    # enough partners everywhere: everything shown
    rows = [(t, f"{t}-{i}", {"requested": 1.0, "unmet": 0.0}) for t in "12" for i in range(3)]
    assert group_figures(rows, 3) == {
        "1": {"requested": 3.0, "unmet": 0.0},
        "2": {"requested": 3.0, "unmet": 0.0},
    }
    # a non-zero unmet quantity of one partner among many is that partner's figure
    rows = [("1", f"a{i}", {"requested": 10.0, "unmet": 4.0 if i == 0 else 0.0}) for i in range(5)]
    assert group_figures(rows, 3) == {"1": None}


def test_generic_texts_name_the_status_only() -> None:
    explanation = "MAT: ... requires 500 pcs; at most 100 pcs are available in total."
    for status in ("infeasible", "error"):
        text = generic_explanation(status, explanation)
        assert status in text and "500" not in text and "100" not in text
    assert generic_explanation("infeasible", "").startswith("infeasible")
    assert generic_explanation("optimal", "") == ""
    assert "time limit" in generic_explanation("time_limit", "MAT: time limit reached; ...")
    assert generic_run_detail("failed", explanation, "infeasible") == (
        "failed: the decision is infeasible (details for coordinators)"
    )
    assert "solver error" in generic_run_detail("failed", "solver error: hosp 500", None)
    assert generic_run_detail("failed", "gave up after 5 revisions", "optimal") == (
        "gave up after 5 revisions"
    )
    for plain in (
        "revision 2: 3 orders",
        "re-planning without 1 order(s): declined",
        "all 4 orders accepted",
        "approved by coord-anna; 1 more needed",
    ):
        assert generic_run_detail("published", plain) == plain
    assert generic_run_detail("rejected", "rejected by coord-anna: hosp needs only 40") == (
        "rejected by coord-anna"
    )
    assert generic_run_detail("solving", "something new with 500 pcs") == "solving"


def test_views_without_figures() -> None:
    decision = {
        "run_id": "run-000000000001",
        "revision": 1,
        "protocol_id": "p",
        "status": "infeasible",
        "explanation": "requires 500 pcs; at most 100 pcs",
        "requested_by_tier": {"1": 500.0},
        "unmet_by_tier": {"1": 500.0},
        "orders": 0,
        "at": "T",
    }
    [full] = decisions_view([decision], [])
    assert full["requested_by_tier"] == {"1": 500.0} and "500" in full["explanation"]
    [row] = decisions_view([decision], [], with_orders=False, figures=False)
    assert row["requested_by_tier"] == {"1": None} and row["unmet_by_tier"] == {"1": None}
    assert row["status"] == "infeasible" and row["orders_count"] == 0
    assert "500" not in orjson.dumps(row).decode()
    run = {
        "run_id": "run-000000000001",
        "protocol_id": "p",
        "state": "failed",
        "revision": 1,
        "detail": decision["explanation"],
        "at": "T",
    }
    [as_coordinator] = runs_view([run], {"run-000000000001": decision})
    assert as_coordinator["detail"] == decision["explanation"]
    [as_operator] = runs_view([run], {"run-000000000001": decision}, full=False)
    assert as_operator["detail"] == "failed: the decision is infeasible (details for coordinators)"


# -- over HTTP: the console -------------------------------------------------------------------
class Console(AppClient):
    def feed(self, messages: list[Publish]) -> None:
        ops = self.setup.apps["console"][SERVICE_KEY].ops
        for message in messages:
            value = orjson.loads(message.value)
            if message.topic == DECISIONS.name:
                ops.apply_decision(value)
            elif message.topic == RUNS.name:
                ops.apply_run(value)


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    setup = build(tmp_path)
    async with TestClient(TestServer(setup.apps["console"])) as client:
        yield Console(setup, client)


def _by_run(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    return row_of(rows, run.run_id)


async def test_console_operators_and_auditors_get_no_figure_of_one_partner(
    console: Console,
) -> None:
    core = console.setup.coordinator.core
    lone, messages = decide(core, protocol(), one_needy_scenario())
    console.feed(messages)
    coordinator = _by_run(await console.get("coordinator", "/v1/decisions"), lone)
    assert coordinator["requested_by_tier"] == {"1": 100.0}  # hosp's need, to coordinators
    for role in ("operator", "auditor"):
        row = _by_run(await console.get(role, "/v1/decisions"), lone)
        assert row["requested_by_tier"] == {"1": None}, role
        assert row["unmet_by_tier"] == {"1": None}, role
        assert row["status"] == "optimal" and row["orders_count"] == 1
        assert row["orders"] == []


async def test_console_hides_an_infeasible_runs_explanation(console: Console) -> None:
    core = console.setup.coordinator.core
    failed, messages = decide(core, infeasible_protocol(), infeasible_scenario())
    crashed, more = solver_error(core)
    console.feed(messages + more)
    assert "500" in failed.detail and "at most 100" in failed.detail  # what core.py writes
    decision = _by_run(await console.get("coordinator", "/v1/decisions"), failed)
    assert "requires 500" in decision["explanation"]
    runs = await console.get("coordinator", "/v1/runs")
    assert _by_run(runs, failed)["detail"] == failed.detail
    assert _by_run(runs, crashed)["detail"].startswith("solver error: hosp needs 500")
    for role in ("operator", "auditor"):
        decision = _by_run(await console.get(role, "/v1/decisions"), failed)
        assert decision["status"] == "infeasible"
        assert decision["explanation"].startswith("infeasible: ")
        assert decision["requested_by_tier"] == {"1": None}
        runs = await console.get(role, "/v1/runs")
        assert _by_run(runs, failed)["detail"] == (
            "failed: the decision is infeasible (details for coordinators)"
        )
        assert _by_run(runs, crashed)["detail"] == "failed: solver error (details for coordinators)"
        text = orjson.dumps([decision, runs]).decode()
        for secret in SECRETS:
            assert secret not in text, (role, secret)


async def test_console_stream_views_follow_the_same_rule(console: Console) -> None:
    core = console.setup.coordinator.core
    _, messages = decide(core, infeasible_protocol(), infeasible_scenario())
    console.feed(messages)
    service = console.setup.apps["console"][SERVICE_KEY]
    for role in ("operator", "auditor"):
        text = orjson.dumps(service.views_for(role, "someone")).decode()
        for secret in ("500 pcs", "at most", "near"):
            assert secret not in text, (role, secret)
    assert "requires 500" in orjson.dumps(service.views_for("coordinator", "c")).decode()
    # partners: no decision summaries, no runs; only their own view
    partner = service.views_for("partner", "hosp")
    assert "decisions" not in partner and "runs" not in partner and "mine" in partner
    headers = {"Authorization": f"Bearer {console.setup.tokens['partner']}"}
    for path in ("/v1/decisions", "/v1/runs"):
        assert (await console.client.get(path, headers=headers)).status == 403
