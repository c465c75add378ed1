"""Automatic trigger rules over shortage alerts (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schemas.alliance import Alliance
from schemas.protocol import CoverageTrigger, Protocol, ShortfallTrigger
from services.coordinator.snapshot import in_scope


@dataclass(frozen=True)
class Firing:
    protocol_id: str
    reason: str


def shortfall(need: float, surplus: float) -> float:
    """Share of the alliance-wide need of a material that surplus cannot cover."""
    if need <= 0:
        return 0.0
    return max(0.0, need - surplus) / need


def evaluate(
    alert: dict[str, Any],
    protocols: Iterable[Protocol],
    alliance: Alliance | None,
    balance: tuple[float, float] | None,
) -> list[Firing]:
    """Protocols whose automatic triggers fire for a ShortageDetected alert.

    ``balance`` is the alliance-wide (need, surplus) of the alert's material.
    """
    if alert.get("type") != "ShortageDetected":
        return []
    material = str(alert.get("material_id", ""))
    partner = alliance.partner(str(alert.get("partner_id", ""))) if alliance else None
    sector = partner.sector if partner else ""
    region = partner.region if partner else ""
    fired = []
    for protocol in protocols:
        if partner is not None and not in_scope(protocol, sector, region, material):
            continue
        if (
            partner is None
            and protocol.scope.materials
            and material not in protocol.scope.materials
        ):
            continue
        for trigger in protocol.triggers:
            reason = _fires(trigger, alert, balance)
            if reason:
                fired.append(Firing(protocol.id, reason))
                break
    return fired


def _fires(trigger: Any, alert: dict[str, Any], balance: tuple[float, float] | None) -> str:
    """Why the trigger fires, in words every role that sees runs may read: the rule and the
    material, never the partner, its site or its figures (operators and auditors see run
    triggers; the alert behind it stays with the ledger and the partner)."""
    material = alert.get("material_id")
    if isinstance(trigger, CoverageTrigger):
        coverage = alert.get("coverage_days")
        if alert.get("criticality") != trigger.criticality.value:
            return ""
        who = f"a {trigger.criticality.value.replace('_', ' ')} site"
        if coverage is not None and coverage < trigger.days:
            return f"coverage under {trigger.days:g} d at {who} for {material}"
        if coverage is None and "stock_out" in alert.get("causes", ()):
            return f"stock-out at {who} for {material}"
        return ""
    if (
        isinstance(trigger, ShortfallTrigger)
        and balance is not None
        and shortfall(*balance) > trigger.fraction
    ):
        return f"alliance-wide shortfall of {material} over {trigger.fraction:.0%}"
    return ""
