"""The console's pure views: shortage board, freshness, runs, decisions and orders."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.alliance import Alliance
from services.console.views import (
    OpsState,
    board_view,
    decisions_view,
    freshness_view,
    order_summary,
    runs_view,
    summary_view,
)

ALLIANCE = Alliance.model_validate(
    {
        "name": "Test alliance",
        "partners": [
            {
                "id": pid,
                "name": pid.title(),
                "sector": "hospital",
                "region": region,
                "criticality": "hospital",
                "sites": [{"id": "s1", "name": "Main", "latitude": 48.0, "longitude": 11.0}],
            }
            for pid, region in (("hosp-a", "DE-BY"), ("hosp-b", "DE-BY"), ("hosp-c", "DE-NW"))
        ],
    },
    strict=False,
)


def detected(partner: str, material: str, severity: str, site: str = "s1", at: str = "T1") -> dict:
    return {
        "type": "ShortageDetected",
        "alert_id": f"a-{partner}-{material}-{severity}",
        "partner_id": partner,
        "site_id": site,
        "material_id": material,
        "unit": "pcs",
        "severity": severity,
        "causes": ["low_coverage"],
        "criticality": "hospital",
        "on_hand": 1.0,
        "safety_stock": 10.0,
        "coverage_days": 0.5,
        "detected_at": at,
        "source_event_id": "e1",
    }


def resolved(partner: str, material: str, site: str = "s1") -> dict:
    return {
        "type": "ShortageResolved",
        "alert_id": "r",
        "partner_id": partner,
        "site_id": site,
        "material_id": material,
        "previous_severity": "critical",
        "resolved_at": "T9",
        "source_event_id": "e2",
    }


def run_update(run_id: str, state: str, at: str, **extra: Any) -> dict:
    return {
        "type": "RunUpdated",
        "run_id": run_id,
        "protocol_id": "p1",
        "protocol_version": 2,
        "protocol_hash": "h",
        "scope_key": "s",
        "state": state,
        "revision": extra.pop("revision", 0),
        "trigger": "manual",
        "approvals": extra.pop("approvals", []),
        "approvals_needed": 1,
        "at": at,
        **extra,
    }


def issued(order_id: str, recipient: str, must_answer: bool, revision: int = 1) -> dict:
    return {
        "type": "OrderIssued",
        "order_id": order_id,
        "run_id": "run-000000000001",
        "revision": revision,
        "recipient": recipient,
        "must_answer": must_answer,
        "kind": "transfer",
        "order": {
            "material_id": "NACL",
            "quantity": 40.0,
            "unit": "pcs",
            "from_partner": "donor",
            "to_partner": "hosp-a",
        },
        "respond_by": "2030-01-01T00:00:00Z",
        "at": "2030-01-01T00:00:00Z",
    }


def updated(order_id: str, state: str, at: str, reason: str = "") -> dict:
    return {
        "type": "OrderUpdated",
        "order_id": order_id,
        "run_id": "run-000000000001",
        "revision": 1,
        "recipient": "donor",
        "state": state,
        "reason": reason,
        "at": at,
    }


# -- shortages and the board ------------------------------------------------------------------
def test_latest_detection_is_open_until_resolved() -> None:
    state = OpsState()
    assert state.apply_alert(detected("hosp-a", "NACL", "watch"))
    assert state.apply_alert(detected("hosp-a", "NACL", "critical", at="T2"))
    assert [a["severity"] for a in state.shortages.values()] == ["critical"]
    assert state.apply_alert(resolved("hosp-a", "NACL"))
    assert state.shortages == {}
    # resolving what is not open changes nothing; balance reports are ignored
    assert not state.apply_alert(resolved("hosp-a", "NACL"))
    assert not state.apply_alert({"type": "MaterialBalancesReported", "balances": []})


def test_resolution_closes_only_its_own_site() -> None:
    state = OpsState()
    state.apply_alert(detected("hosp-a", "NACL", "critical", site="s1"))
    state.apply_alert(detected("hosp-a", "NACL", "shortage", site="s2"))
    state.apply_alert(resolved("hosp-a", "NACL", site="s1"))
    assert [(k[1], a["severity"]) for k, a in state.shortages.items()] == [("s2", "shortage")]


def test_board_cells_worst_severity_and_counts() -> None:
    alerts = [
        detected("hosp-a", "NACL", "watch"),
        detected("hosp-b", "NACL", "critical"),
        detected("hosp-b", "NACL", "shortage", site="s2"),
        detected("hosp-c", "NACL", "watch"),
        detected("hosp-c", "PROPOFOL", "shortage"),
        detected("stranger", "PROPOFOL", "watch"),
    ]
    board = board_view(alerts, ALLIANCE)
    assert board["materials"] == ["NACL", "PROPOFOL"]
    assert board["regions"] == ["DE-BY", "DE-NW", "unknown"]
    cells = {(c["material"], c["region"]): c for c in board["cells"]}
    bavaria = cells[("NACL", "DE-BY")]
    assert bavaria["worst"] == "critical" and bavaria["count"] == 3
    assert bavaria["by_severity"] == {"watch": 1, "shortage": 1, "critical": 1}
    assert bavaria["partners"] == ["hosp-a", "hosp-b"]
    assert cells[("NACL", "DE-NW")]["worst"] == "watch"
    assert cells[("PROPOFOL", "unknown")]["worst"] == "watch"
    assert ("PROPOFOL", "DE-BY") not in cells
    assert board["totals"] == {"watch": 3, "shortage": 2, "critical": 1}
    assert board["open"] == 6
    # materials with the most critical shortages first
    assert [row["material"] for row in board["by_material"]] == ["NACL", "PROPOFOL"]
    assert board["by_material"][1]["by_severity"] == {"watch": 1, "shortage": 1, "critical": 0}


def test_empty_board() -> None:
    board = board_view([], ALLIANCE)
    assert board["cells"] == [] and board["open"] == 0 and board["by_material"] == []


# -- freshness --------------------------------------------------------------------------------
def test_freshness_flags_old_and_silent_partners() -> None:
    now = 10_000.0
    view = freshness_view({"hosp-a": now - 30, "hosp-b": now - 7200}, ALLIANCE, now, 3600)
    rows = {r["partner"]: r for r in view["partners"]}
    assert rows["hosp-a"]["stale"] is False and rows["hosp-a"]["age_seconds"] == 30
    assert rows["hosp-b"]["stale"] is True and rows["hosp-b"]["age_seconds"] == 7200
    assert rows["hosp-c"]["stale"] is True and rows["hosp-c"]["age_seconds"] is None
    # stale first, never-seen before old, fresh last
    assert [r["partner"] for r in view["partners"]] == ["hosp-c", "hosp-b", "hosp-a"]
    assert view["stale"] == 2 and view["total"] == 3


def test_freshness_threshold_is_exclusive_and_future_times_are_fresh() -> None:
    view = freshness_view({"hosp-a": 100.0, "hosp-b": 5000.0}, ALLIANCE, 1100.0, 1000)
    rows = {r["partner"]: r for r in view["partners"]}
    assert rows["hosp-a"]["stale"] is False  # exactly the threshold
    assert rows["hosp-b"]["age_seconds"] == 0 and rows["hosp-b"]["stale"] is False


def test_freshness_without_alliance_lists_reporting_partners() -> None:
    view = freshness_view({"x-partner": 5.0}, None, 10.0, 100)
    assert [(r["partner"], r["region"], r["stale"]) for r in view["partners"]] == [
        ("x-partner", "unknown", False)
    ]


# -- runs -------------------------------------------------------------------------------------
def test_runs_latest_state_newest_first() -> None:
    state = OpsState()
    state.apply_run(run_update("run-000000000001", "awaiting_approval", "2030-01-01T00:00:01Z"))
    state.apply_run(run_update("run-000000000002", "completed", "2030-01-01T00:00:02Z"))
    state.apply_run(
        run_update("run-000000000001", "solving", "2030-01-01T00:00:03Z", approvals=["coord-anna"])
    )
    assert not state.apply_run({"type": "DecisionPublished"})
    rows = runs_view(state.runs.values())
    assert [(r["run_id"], r["state"]) for r in rows] == [
        ("run-000000000001", "solving"),
        ("run-000000000002", "completed"),
    ]
    assert rows[0]["active"] and not rows[0]["awaiting"] and rows[0]["approvals"] == ["coord-anna"]
    assert not rows[1]["active"]


@pytest.mark.parametrize(
    ("state", "active", "awaiting"),
    [
        ("awaiting_approval", True, True),
        ("solving", True, False),
        ("published", True, False),
        ("completed", False, False),
        ("rejected", False, False),
        ("failed", False, False),
    ],
)
def test_run_activity(state: str, active: bool, awaiting: bool) -> None:
    [row] = runs_view([run_update("run-000000000001", state, "t")])
    assert (row["active"], row["awaiting"]) == (active, awaiting)


# -- decisions and orders ---------------------------------------------------------------------
def decision(revision: int, at: str) -> dict:
    return {
        "type": "DecisionPublished",
        "run_id": "run-000000000001",
        "revision": revision,
        "protocol_id": "p1",
        "protocol_version": 2,
        "kind": "material_reallocation",
        "status": "optimal",
        "proven_optimal": True,
        "requested_by_tier": {"1": 40.0},
        "unmet_by_tier": {"1": 0.0},
        "total_cost": 3.0,
        "orders": 1,
        "partners": ["donor", "hosp-a"],
        "decision_hash": "d",
        "snapshot_hash": "s",
        "solve_seconds": 0.1,
        "trigger_to_decision_seconds": 0.2,
        "at": at,
    }


def test_orders_merge_copies_and_follow_acknowledgements() -> None:
    state = OpsState()
    state.apply_decision(decision(1, "2030-01-01T00:00:00Z"))
    state.apply_order(issued("run-000000000001.r1.tr-1", "donor", True))
    state.apply_order(issued("run-000000000001.r1.tr-1", "hosp-a", False))
    assert len(state.orders) == 1
    state.apply_order(updated("run-000000000001.r1.tr-1", "accepted", "2030-01-01T00:01:00Z"))
    # an older update arriving late (other partition) does not undo the acceptance
    assert not state.apply_order(
        updated("run-000000000001.r1.tr-1", "pending", "2030-01-01T00:00:30Z")
    )
    [row] = decisions_view(state.decisions.values(), state.orders.values())
    assert row["revision"] == 1 and row["status"] == "optimal"
    [order] = row["orders"]
    assert order["responder"] == "donor" and order["recipients"] == ["donor", "hosp-a"]
    assert order["state"] == "accepted"
    assert order["summary"] == "40 pcs NACL donor -> hosp-a"
    assert row["order_states"] == {"accepted": 1}


def test_replan_shows_new_revision_and_old_orders_with_their_states() -> None:
    state = OpsState()
    state.apply_decision(decision(1, "2030-01-01T00:00:00Z"))
    state.apply_order(issued("run-000000000001.r1.tr-1", "donor", True, revision=1))
    state.apply_order(
        updated("run-000000000001.r1.tr-1", "declined", "2030-01-01T00:01:00Z", "needed")
    )
    state.apply_decision(decision(2, "2030-01-01T00:02:00Z"))
    assert not state.apply_decision(decision(1, "2030-01-01T00:00:00Z"))  # late copy
    state.apply_order(issued("run-000000000001.r2.tr-2", "donor", True, revision=2))
    [row] = decisions_view(state.decisions.values(), state.orders.values())
    assert row["revision"] == 2
    assert [(o["revision"], o["state"], o["reason"]) for o in row["orders"]] == [
        (2, "pending", ""),
        (1, "declined", "needed"),
    ]
    assert row["order_states"] == {"pending": 1}  # of the current revision


def test_update_before_issue_is_kept() -> None:
    state = OpsState()
    state.apply_order(updated("run-000000000001.r1.tr-9", "expired", "2030-01-01T00:05:00Z"))
    state.apply_order(issued("run-000000000001.r1.tr-9", "donor", True))
    assert state.orders["run-000000000001.r1.tr-9"]["state"] == "expired"
    assert state.orders["run-000000000001.r1.tr-9"]["kind"] == "transfer"


def test_order_summary_of_other_kinds() -> None:
    assert order_summary("capacity", {"hours": 8, "capability": "sterile", "x": {"a": 1}}) == (
        "capability=sterile, hours=8"
    )


def test_summary_counts() -> None:
    board = board_view([detected("hosp-a", "NACL", "critical")], ALLIANCE)
    freshness = freshness_view({}, ALLIANCE, 0.0, 10)
    runs = runs_view(
        [
            run_update("run-000000000001", "awaiting_approval", "a"),
            run_update("run-000000000002", "completed", "b"),
        ]
    )
    assert summary_view(board, freshness, runs) == {
        "open_shortages": 1,
        "critical": 1,
        "stale_partners": 3,
        "partners": 3,
        "active_runs": 1,
        "awaiting_approval": 1,
    }
