"""Build a protocol's input snapshot (a Scenario) from the replicated ledger state (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from schemas.agreements import Agreements
from schemas.alliance import Alliance, Partner
from schemas.common import Criticality, Unit
from schemas.protocol import Protocol
from schemas.scenario import (
    CapacityNeed,
    CapacityOffer,
    PurchaseDemand,
    Purchasing,
    Scenario,
    ScenarioMaterial,
    ScenarioNeed,
    ScenarioPosition,
    SupplierOffer,
)
from services.common.logging import get_logger
from services.ledger.state import PartitionState

log = get_logger("coordinator.snapshot")


@dataclass
class Adjustments:
    """What a run's earlier revisions changed: declined donors, dropped needs, commitments."""

    # (partner, site, material) whose surplus may not be used any more (declined/expired)
    excluded_donors: set[tuple[str, str, str]] = field(default_factory=set)
    excluded_offers: set[str] = field(default_factory=set)
    # quantities already committed by accepted orders
    given: dict[tuple[str, str, str], float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)  # scenario need id -> quantity
    # capacity hours already committed: offer id -> hours given, capacity need id -> received
    hours_given: dict[str, float] = field(default_factory=dict)
    hours_received: dict[str, float] = field(default_factory=dict)
    # (partner, material) purchase demands settled (accepted) or dropped (declined/expired)
    excluded_demands: set[tuple[str, str]] = field(default_factory=set)


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def need_key(partner_id: str, need_id: str) -> str:
    """Scenario item id for a partner's need or offer (their ids are only unique per partner).

    At most 64 characters: a longer ``partner.item`` keeps its start and ends in a hash of
    the whole, so two long ids of one partner never collide."""
    key = f"{partner_id}.{need_id}"
    if len(key) <= 64:
        return key
    return f"{key[:51]}~{hashlib.sha256(key.encode()).hexdigest()[:12]}"


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
    supplier_offers: Iterable[SupplierOffer] = (),
) -> Scenario:
    """The protocol's input, minus what earlier revisions of the run committed or excluded.

    Only what the protocol's kind uses goes in (need-to-know, and the run record stores it):
    reallocation gets positions and needs, capacity sharing capacity offers and needs, joint
    purchasing purchase demands and the usable supplier quotes of its materials."""
    adjust = adjustments or Adjustments()
    partners = {p.id: p for p in alliance.partners if in_scope(protocol, p.sector, p.region)}
    inputs = _Inputs(protocol, partners, adjust)
    for state in states:
        if protocol.kind == "material_reallocation":
            inputs.stock(state)
        elif protocol.kind == "capacity_sharing":
            inputs.capacity(state, now)
        elif protocol.kind == "joint_purchasing":
            inputs.demands(state)
    # quotes only for materials somebody in scope wants to buy (inputs.units holds them)
    suppliers = [o for o in supplier_offers if o.material_id in inputs.units]
    if protocol.kind != "joint_purchasing":
        suppliers = []
    agreements = alliance.agreements
    return Scenario(
        name=f"live snapshot for {protocol.id}",
        as_of=today,
        partners=list(partners.values()),
        materials=[ScenarioMaterial(id=m, unit=Unit(u)) for m, u in sorted(inputs.units.items())],
        positions=sorted(inputs.positions, key=lambda p: (p.partner_id, p.site_id, p.material_id)),
        needs=sorted(inputs.needs, key=lambda n: n.need_id),
        agreements=Agreements(
            surplus_sharing=[a for a in agreements.surplus_sharing if a.partner_id in partners],
            capacity_lending=[a for a in agreements.capacity_lending if a.partner_id in partners],
            purchasing_pools=[a for a in agreements.purchasing_pools if a.partner_id in partners],
        ),
        capacity_offers=sorted(inputs.offers, key=lambda o: o.offer_id),
        capacity_needs=sorted(inputs.capacity_needs, key=lambda n: n.need_id),
        purchasing=Purchasing(
            suppliers=suppliers,
            demands=sorted(inputs.purchase_demands, key=lambda d: (d.material_id, d.partner_id)),
        ),
    )


@dataclass
class _Inputs:
    """Collects a snapshot's inputs from the replicated partition states."""

    protocol: Protocol
    partners: dict[str, Partner]
    adjust: Adjustments
    units: dict[str, str] = field(default_factory=dict)
    positions: list[ScenarioPosition] = field(default_factory=list)
    needs: list[ScenarioNeed] = field(default_factory=list)
    offers: list[CapacityOffer] = field(default_factory=list)
    capacity_needs: list[CapacityNeed] = field(default_factory=list)
    purchase_demands: list[PurchaseDemand] = field(default_factory=list)

    def _unit_ok(self, material: str, unit: str) -> bool:
        """One unit per material in a snapshot: the first seen (positions first) wins; an
        item in another unit is left out and logged, never added up with the others."""
        known = self.units.setdefault(material, unit)
        if known != unit:
            log.warning("snapshot_unit_mismatch", material=material, unit=unit, expected=known)
            return False
        return True

    def _member(self, partner_id: str, material: str | None = None) -> bool:
        partner = self.partners.get(partner_id)
        return partner is not None and (
            material is None or in_scope(self.protocol, partner.sector, partner.region, material)
        )

    def stock(self, state: PartitionState) -> None:
        adjust = self.adjust
        for (partner_id, site, material), record in state.positions.items():
            if not self._member(partner_id, material) or not self._unit_ok(material, record.unit):
                continue
            on_hand = record.on_hand - adjust.given.get((partner_id, site, material), 0.0)
            if (partner_id, site, material) in adjust.excluded_donors:
                on_hand = min(on_hand, record.safety_stock)
            self.positions.append(
                ScenarioPosition(
                    partner_id=partner_id,
                    site_id=site,
                    material_id=material,
                    on_hand=max(0.0, on_hand),
                    safety_stock=record.safety_stock,
                    daily_consumption=record.daily_consumption,
                )
            )
        for (partner_id, need_id), need in state.needs.items():
            if not self._member(partner_id, need.material_id) or not self._unit_ok(
                need.material_id, need.unit
            ):
                continue
            key = need_key(partner_id, need_id)
            quantity = need.quantity - adjust.received.get(key, 0.0)
            if quantity <= 1e-9:
                continue
            self.needs.append(
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

    def capacity(self, state: PartitionState, now: float) -> None:
        adjust = self.adjust
        for (partner_id, offer_id), offer in state.offers.current.items():
            key = need_key(partner_id, offer_id)
            if not self._member(partner_id) or offer.available_until < now:
                continue
            hours = offer.hours - adjust.hours_given.get(key, 0.0)
            if key in adjust.excluded_offers or hours <= 1e-9:
                continue
            self.offers.append(
                CapacityOffer(
                    offer_id=key,
                    partner_id=partner_id,
                    site_id=offer.site_id,
                    capability=offer.capability,
                    qualifications=list(offer.qualifications),
                    hours=hours,
                    available_from=(
                        _day(offer.available_from) if offer.available_from > now else None
                    ),
                )
            )
        for (partner_id, need_id), need in state.capacity_needs.current.items():
            key = need_key(partner_id, need_id)
            hours = need.hours - adjust.hours_received.get(key, 0.0)
            if not self._member(partner_id) or hours <= 1e-9:
                continue
            self.capacity_needs.append(
                CapacityNeed(
                    need_id=key,
                    partner_id=partner_id,
                    site_id=need.site_id,
                    capability=need.capability,
                    required_qualifications=list(need.required_qualifications),
                    hours=hours,
                    needed_by=date.fromisoformat(need.needed_by),
                    criticality=Criticality(need.criticality),
                )
            )

    def demands(self, state: PartitionState) -> None:
        for (partner_id, material), demand in state.purchase_demands.current.items():
            if not self._member(partner_id, material) or not self._unit_ok(material, demand.unit):
                continue
            if (partner_id, material) in self.adjust.excluded_demands:
                continue
            self.purchase_demands.append(
                PurchaseDemand(
                    partner_id=partner_id, material_id=material, quantity=demand.quantity
                )
            )
