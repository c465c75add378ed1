"""Automatic trigger rules and the snapshot built from replicated ledger state."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.alliance import Alliance
from schemas.protocol import Protocol
from services.coordinator.snapshot import Adjustments, build_snapshot, need_key
from services.coordinator.triggers import evaluate, shortfall
from services.ledger.state import PartitionState
from tests.protocols.helpers import protocol

ALLIANCE = Alliance.model_validate(
    {
        "name": "t",
        "partners": [
            {
                "id": pid,
                "name": pid,
                "sector": sector,
                "region": region,
                "criticality": crit,
                "sites": [{"id": "s1", "name": "s", "latitude": 50, "longitude": 10}],
            }
            for pid, sector, region, crit in [
                ("hosp", "hospital", "DE-BY", "hospital"),
                ("plant", "manufacturing", "DE-NW", "normal"),
            ]
        ],
        "agreements": {"surplus_sharing": [{"partner_id": "plant", "share": 0.5}]},
    },
    strict=False,
)


def with_triggers(*triggers: dict, **scope: list[str]) -> Protocol:
    base = protocol().model_dump(mode="json")
    base.update(triggers=list(triggers), scope=scope)
    return Protocol.model_validate(base, strict=False)


def alert(**fields: object) -> dict:
    return {
        "type": "ShortageDetected",
        "partner_id": "hosp",
        "site_id": "s1",
        "material_id": "NACL",
        "criticality": "hospital",
        "coverage_days": 1.5,
        "causes": ["low_coverage"],
        **fields,
    }


COVERAGE = {"type": "coverage_below", "criticality": "hospital", "days": 3}


def test_coverage_trigger_fires_only_for_its_class_and_threshold() -> None:
    rule = with_triggers(COVERAGE)
    assert [f.protocol_id for f in evaluate(alert(), [rule], ALLIANCE, None)] == [rule.id]
    assert evaluate(alert(coverage_days=3.5), [rule], ALLIANCE, None) == []
    assert evaluate(alert(criticality="normal"), [rule], ALLIANCE, None) == []
    assert evaluate(alert(type="ShortageResolved"), [rule], ALLIANCE, None) == []
    stock_out = alert(coverage_days=None, causes=["stock_out"])
    assert "stock-out" in evaluate(stock_out, [rule], ALLIANCE, None)[0].reason


def test_trigger_reasons_name_the_rule_and_material_not_the_partner_or_its_figures() -> None:
    """Operators and auditors see run triggers: no partner, site or stock figure in them."""
    rule = with_triggers(COVERAGE, {"type": "alliance_shortfall", "fraction": 0.1})
    reasons = [
        evaluate(alert(coverage_days=1.37), [rule], ALLIANCE, None)[0].reason,
        evaluate(alert(coverage_days=None, causes=["stock_out"]), [rule], ALLIANCE, None)[0].reason,
        evaluate(alert(criticality="normal"), [rule], ALLIANCE, (123.0, 45.0))[0].reason,
    ]
    assert reasons == [
        "coverage under 3 d at a hospital site for NACL",
        "stock-out at a hospital site for NACL",
        "alliance-wide shortfall of NACL over 10%",
    ]
    assert not any(word in r for r in reasons for word in ("hosp ", "s1", "1.4", "63", "123"))


def test_scope_limits_which_protocols_fire() -> None:
    other_material = with_triggers(COVERAGE, materials=["PROPOFOL"])
    other_region = with_triggers(COVERAGE, regions=["DE-NW"])
    in_scope = with_triggers(COVERAGE, sectors=["hospital"], materials=["NACL"])
    fired = evaluate(alert(), [other_material, other_region, in_scope], ALLIANCE, None)
    assert len(fired) == 1


def test_alliance_shortfall_trigger() -> None:
    rule = with_triggers({"type": "alliance_shortfall", "fraction": 0.1})
    assert shortfall(100, 95) == pytest.approx(0.05)
    assert shortfall(0, 10) == 0
    assert evaluate(alert(), [rule], ALLIANCE, (100.0, 95.0)) == []
    assert len(evaluate(alert(), [rule], ALLIANCE, (100.0, 80.0))) == 1


def state() -> PartitionState:
    s = PartitionState(0)
    s.set_position("hosp", "s1", "NACL", "pcs", 10.0, 50.0, 10.0, 1.0, "ev-00000001")
    s.set_position("plant", "s1", "NACL", "pcs", 300.0, 100.0, 5.0, 1.0, "ev-00000002")
    s.set_position("plant", "s1", "BOLT", "pcs", 50.0, 10.0, 1.0, 1.0, "ev-00000003")
    s.set_need(
        ["hosp", "n1", "s1", "NACL", "pcs", 80.0, "2026-11-25", "hospital", 1.0, "ev-00000004"]
    )
    return s


def test_snapshot_carries_positions_needs_agreements_within_scope() -> None:
    snap = build_snapshot(
        ALLIANCE,
        [state()],
        with_triggers({"type": "manual"}, materials=["NACL"]),
        date(2026, 11, 22),
        0.0,
    )
    assert {(p.partner_id, p.material_id) for p in snap.positions} == {
        ("hosp", "NACL"),
        ("plant", "NACL"),
    }
    [need] = snap.needs
    assert need.need_id == need_key("hosp", "n1") and need.quantity == 80
    assert [a.partner_id for a in snap.agreements.surplus_sharing] == ["plant"]
    assert [m.id for m in snap.materials] == ["NACL"]


def test_snapshot_applies_declines_and_commitments() -> None:
    adjust = Adjustments(
        excluded_donors={("plant", "s1", "NACL")},
        received={need_key("hosp", "n1"): 30.0},
    )
    snap = build_snapshot(ALLIANCE, [state()], protocol(), date(2026, 11, 22), 0.0, adjust)
    plant = next(p for p in snap.positions if (p.partner_id, p.material_id) == ("plant", "NACL"))
    assert plant.on_hand == plant.safety_stock  # a declining donor has nothing to give
    assert snap.needs[0].quantity == pytest.approx(50)
    given = Adjustments(given={("plant", "s1", "NACL"): 120.0})
    snap = build_snapshot(ALLIANCE, [state()], protocol(), date(2026, 11, 22), 0.0, given)
    plant = next(p for p in snap.positions if (p.partner_id, p.material_id) == ("plant", "NACL"))
    assert plant.on_hand == pytest.approx(180)
