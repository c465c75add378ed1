"""Tiny scenario and protocol builders for the protocol tests."""

from __future__ import annotations

from datetime import date
from typing import Any

from schemas.protocol import Protocol
from schemas.scenario import Scenario, parse_scenario

CRIT = {1: "hospital", 2: "critical_infrastructure", 3: "normal"}


def protocol(kind: str = "material_reallocation", **params: Any) -> Protocol:
    solver = params.pop("solver", {})
    return Protocol.model_validate(
        {
            "id": "test-protocol",
            "title": "test",
            "version": 1,
            "owner": "tests",
            "purpose": "Keep essential supply running in a shortage (test).",
            "last_reviewed": "2026-01-01",
            "review_interval_days": 365,
            "triggers": [{"type": "manual"}],
            "approval": "automatic",
            "optimization": {"kind": kind, **params},
            "solver": solver,
            "response_hours": 4,
        },
        strict=False,
    )


def scenario(
    donors: list[tuple[str, float, float, float, float]],
    needs: list[tuple[str, int, float, float]],
    material: dict[str, Any] | None = None,
    lat_lon: dict[str, tuple[float, float]] | None = None,
) -> Scenario:
    """donors: (id, on_hand, safety, share, lon); needs: (id, tier, quantity, lon)."""
    partners = []
    for pid, *_rest in donors:
        lon = _rest[3]
        partners.append(_partner(pid, 3, lon))
    for pid, tier, _q, lon in needs:
        partners.append(_partner(pid, tier, lon))
    return parse_scenario(
        {
            "name": "tiny",
            "as_of": "2026-11-23",
            "partners": partners,
            "materials": [{"id": "MAT", "unit": "pcs", **(material or {})}],
            "positions": [
                {
                    "partner_id": pid,
                    "site_id": "s",
                    "material_id": "MAT",
                    "on_hand": oh,
                    "safety_stock": ss,
                }
                for pid, oh, ss, _sh, _lon in donors
            ],
            "needs": [
                {
                    "need_id": f"need-{pid}",
                    "partner_id": pid,
                    "site_id": "s",
                    "material_id": "MAT",
                    "quantity": q,
                    "needed_by": date(2026, 11, 25).isoformat(),
                }
                for pid, _t, q, _lon in needs
            ],
            "agreements": {
                "surplus_sharing": [
                    {"partner_id": pid, "share": sh} for pid, _o, _s, sh, _l in donors
                ]
            },
        }
    )


def _partner(pid: str, tier: int, lon: float) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "sector": "test",
        "region": "DE",
        "criticality": CRIT[tier],
        "sites": [{"id": "s", "name": "s", "latitude": 50.0, "longitude": lon}],
    }
