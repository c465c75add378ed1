"""Build a protocol's input snapshot (a Scenario) from the replicated ledger state (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from schemas.agreements import Agreements
from schemas.alliance import Alliance
from schemas.common import Criticality, Unit
from schemas.protocol import Protocol
from schemas.scenario import (
    CapacityOffer,
    Scenario,
    ScenarioMaterial,
    ScenarioNeed,
    ScenarioPosition,
)
from services.ledger.state import PartitionState


@dataclass
class Adjustments:
    """What a run's earlier revisions changed: declined donors, dropped needs, commitments."""

    # (partner, site, material) whose surplus may not be used any more (declined/expired)
    excluded_donors: set[tuple[str, str, str]] = field(default_factory=set)
    excluded_offers: set[str] = field(default_factory=set)
    # quantities already committed by accepted orders
    given: dict[tuple[str, str, str], float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)  # scenario need id -> quantity


def need_key(partner_id: str, need_id: str) -> str:
    """Scenario need id for a partner's need (need ids are only unique per partner)."""
    return f"{partner_id}.{need_id}"[:64]


def in_scope(protocol: Protocol, sector: str, region: str, material: str | None = None) -> bool:
    scope = protocol.scope
    if scope.sectors and sector not in scope.sectors:
        return False
    if scope.regions and region not in scope.regions:
        return False
    return not (material is not None and scope.materials and material not in scope.materials)


def build_snapshot(
    alliance: Alliance,
    states: Iterable[PartitionState],
    protocol: Protocol,
    today: date,
    now: float,
    adjustments: Adjustments | None = None,
) -> Scenario:
    adjust = adjustments or Adjustments()
    partners = {p.id: p for p in alliance.partners if in_scope(protocol, p.sector, p.region)}
    positions: list[ScenarioPosition] = []
    needs: list[ScenarioNeed] = []
    offers: list[CapacityOffer] = []
    units: dict[str, str] = {}
    for state in states:
        for (partner_id, site, material), record in state.positions.items():
            partner = partners.get(partner_id)
            if partner is None or not in_scope(protocol, partner.sector, partner.region, material):
                continue
            on_hand = record.on_hand - adjust.given.get((partner_id, site, material), 0.0)
            if (partner_id, site, material) in adjust.excluded_donors:
                on_hand = min(on_hand, record.safety_stock)
            positions.append(
                ScenarioPosition(
                    partner_id=partner_id,
                    site_id=site,
                    material_id=material,
                    on_hand=max(0.0, on_hand),
                    safety_stock=record.safety_stock,
                    daily_consumption=record.daily_consumption,
                )
            )
            units.setdefault(material, record.unit)
        for (partner_id, need_id), need in state.needs.items():
            partner = partners.get(partner_id)
            if partner is None or not in_scope(
                protocol, partner.sector, partner.region, need.material_id
            ):
                continue
            key = need_key(partner_id, need_id)
            quantity = need.quantity - adjust.received.get(key, 0.0)
            if quantity <= 1e-9:
                continue
            needs.append(
                ScenarioNeed(
                    need_id=key,
                    partner_id=partner_id,
                    site_id=need.site_id,
                    material_id=need.material_id,
                    quantity=quantity,
                    needed_by=date.fromisoformat(need.needed_by),
                    criticality=Criticality(need.criticality),
                )
            )
            units.setdefault(need.material_id, need.unit)
        for (partner_id, offer_id), offer in state.offers.items():
            if partner_id not in partners or offer.available_until < now:
                continue
            if f"{partner_id}.{offer_id}" in adjust.excluded_offers:
                continue
            offers.append(
                CapacityOffer(
                    offer_id=f"{partner_id}.{offer_id}"[:64],
                    partner_id=partner_id,
                    site_id=offer.site_id,
                    capability=offer.capability,
                    qualifications=list(offer.qualifications),
                    hours=offer.hours,
                )
            )
    materials = [ScenarioMaterial(id=m, unit=Unit(u)) for m, u in sorted(units.items())]
    agreements = alliance.agreements
    return Scenario(
        name=f"live snapshot for {protocol.id}",
        as_of=today,
        partners=list(partners.values()),
        materials=materials,
        positions=sorted(positions, key=lambda p: (p.partner_id, p.site_id, p.material_id)),
        needs=sorted(needs, key=lambda n: n.need_id),
        agreements=Agreements(
            surplus_sharing=[a for a in agreements.surplus_sharing if a.partner_id in partners],
            capacity_lending=[a for a in agreements.capacity_lending if a.partner_id in partners],
            purchasing_pools=[a for a in agreements.purchasing_pools if a.partner_id in partners],
        ),
        capacity_offers=sorted(offers, key=lambda o: o.offer_id),
    )
