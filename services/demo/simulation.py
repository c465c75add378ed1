"""The demo alliance's stock simulation (pure): drifting stock and a supply disruption.

Every tick each site consumes about its daily consumption scaled to the tick and is
resupplied when it drops near its safety stock. From ``disruption_at`` on, resupply
of the disrupted materials stops for the affected regions, so their coverage falls
and shortages appear; hospitals report an explicit need once they drop below safety
stock.

Capacity and purchasing: on the first tick pharma and manufacturing partners offer idle
machine hours; when the disruption starts, hospitals in the affected regions lose their own
sterilisation and ask for hours (CapacityNeeded), some plants need milling, and the pool
members report what they want to buy together (PurchaseDemandReported).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.alliance import Alliance
from schemas.common import Criticality, Unit
from schemas.events import (
    CapacityNeeded,
    CapacityOffered,
    NeedReported,
    PurchaseDemandReported,
    StockPosition,
    StockReported,
)
from services.demo.alliance import CAPABILITIES, MATERIALS, POOL_MATERIALS, materials_for

PartnerEventOut = (
    StockReported | NeedReported | CapacityOffered | CapacityNeeded | PurchaseDemandReported
)

REORDER_DAYS = 16.0  # partners reorder when coverage falls under this (above every watch level)
ORDER_UP_TO_DAYS = 30.0


@dataclass
class SimPosition:
    unit: str
    on_hand: float
    safety_stock: float
    daily: float


@dataclass
class Disruption:
    materials: tuple[str, ...] = ("NACL-500ML", "PROPOFOL-20ML", "CHLORINE")
    regions: tuple[str, ...] = ("DE-BY", "DE-BW", "DE-HE")


@dataclass
class Simulation:
    alliance: Alliance
    seed: int = 11
    days_per_tick: float = 1.0
    disruption_at_tick: int = 20
    disruption: Disruption = field(default_factory=Disruption)
    tick: int = 0
    positions: dict[tuple[str, str, str], SimPosition] = field(default_factory=dict)
    needs_reported: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        for partner in self.alliance.partners:
            for site in partner.sites:
                for material in materials_for(partner):
                    daily = material.daily * self.rng.uniform(0.6, 1.4)
                    safety = round(daily * self.rng.uniform(3, 5))
                    on_hand = round(daily * self.rng.uniform(REORDER_DAYS + 1, ORDER_UP_TO_DAYS))
                    key = (partner.id, site.id, material.id)
                    self.positions[key] = SimPosition(material.unit.value, on_hand, safety, daily)

    @property
    def disrupted(self) -> bool:
        return self.tick >= self.disruption_at_tick

    def step(self, now: datetime) -> list[PartnerEventOut]:
        """Advance one tick and return the events partners send for it."""
        self.tick += 1
        by_site: dict[tuple[str, str], list[StockPosition]] = {}
        needs: list[PartnerEventOut] = []
        partners = self.alliance.by_id
        for (partner_id, site_id, material_id), pos in self.positions.items():
            region = partners[partner_id].region
            cut_off = (
                self.disrupted
                and material_id in self.disruption.materials
                and region in self.disruption.regions
            )
            use = pos.daily * self.days_per_tick * self.rng.uniform(0.7, 1.3)
            if cut_off:
                use *= 1.5
            pos.on_hand = max(0.0, pos.on_hand - use)
            if not cut_off and pos.on_hand < pos.daily * REORDER_DAYS:
                pos.on_hand = pos.daily * self.rng.uniform(ORDER_UP_TO_DAYS - 5, ORDER_UP_TO_DAYS)
            by_site.setdefault((partner_id, site_id), []).append(
                StockPosition(
                    site_id=site_id,
                    material_id=material_id,
                    unit=Unit(pos.unit),
                    on_hand=round(pos.on_hand, 1),
                    safety_stock=pos.safety_stock,
                    daily_consumption=round(pos.daily, 2),
                )
            )
            key = (partner_id, site_id, material_id)
            hospital = partners[partner_id].criticality is Criticality.HOSPITAL
            if (
                cut_off
                and hospital
                and pos.on_hand < pos.safety_stock
                and key not in self.needs_reported
            ):
                self.needs_reported.add(key)
                needs.append(self._need(partner_id, site_id, material_id, pos, now))
        events: list[PartnerEventOut] = [
            StockReported.model_validate(
                {
                    "event_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                    "partner_id": partner_id,
                    "occurred_at": now,
                    "positions": positions,
                },
                strict=False,
            )
            for (partner_id, _site), positions in sorted(by_site.items())
        ]
        if self.tick == 1:
            events.extend(self._capacity_offers(now))
        if self.tick == self.disruption_at_tick:
            events.extend(self._crisis_requests(now))
        return events + needs

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _capacity_offers(self, now: datetime) -> list[PartnerEventOut]:
        offers: list[PartnerEventOut] = []
        for partner in self.alliance.partners:
            if partner.sector not in CAPABILITIES:
                continue
            capability, qualification = CAPABILITIES[partner.sector]
            offers.append(
                CapacityOffered.model_validate(
                    {
                        "event_id": self._event_id(),
                        "partner_id": partner.id,
                        "occurred_at": now,
                        "offer_id": f"idle-{capability}",
                        "site_id": partner.sites[0].id,
                        "capability": capability,
                        "qualifications": [qualification],
                        "hours": round(self.rng.uniform(20, 80)),
                        "available_from": now,
                        "available_until": now + timedelta(days=30),
                    },
                    strict=False,
                )
            )
        return offers

    def _withdraw_offer(self, partner_id: str, capability: str, now: datetime) -> CapacityOffered:
        partner = self.alliance.by_id[partner_id]
        return CapacityOffered.model_validate(
            {
                "event_id": self._event_id(),
                "partner_id": partner_id,
                "occurred_at": now,
                "offer_id": f"idle-{capability}",
                "site_id": partner.sites[0].id,
                "capability": capability,
                "hours": 0,
                "available_from": now,
                "available_until": now + timedelta(days=30),
            },
            strict=False,
        )

    def _crisis_requests(self, now: datetime) -> list[PartnerEventOut]:
        requests: list[PartnerEventOut] = []
        for partner in self.alliance.partners:
            affected = partner.region in self.disruption.regions
            wanted = {"hospital": "sterilisation", "manufacturing": "cnc-milling"}
            if affected and partner.sector in wanted and self.rng.random() < 0.6:
                capability = wanted[partner.sector]
                qualification = CAPABILITIES[
                    "pharma" if capability == "sterilisation" else "manufacturing"
                ][1]
                if CAPABILITIES.get(partner.sector, ("",))[0] == capability:
                    # its own machines are down: the idle hours it offered are gone too
                    requests.append(self._withdraw_offer(partner.id, capability, now))
                requests.append(
                    CapacityNeeded.model_validate(
                        {
                            "event_id": self._event_id(),
                            "partner_id": partner.id,
                            "occurred_at": now,
                            "need_id": f"{capability}-outage",
                            "site_id": partner.sites[0].id,
                            "capability": capability,
                            "required_qualifications": [qualification],
                            "hours": round(self.rng.uniform(10, 40)),
                            "needed_by": (now.astimezone(UTC).date() + timedelta(days=3)),
                            "criticality": partner.criticality,
                        },
                        strict=False,
                    )
                )
            for material in MATERIALS:
                if material.id in POOL_MATERIALS and partner.sector in ("hospital", "pharma"):
                    requests.append(
                        PurchaseDemandReported.model_validate(
                            {
                                "event_id": self._event_id(),
                                "partner_id": partner.id,
                                "occurred_at": now,
                                "material_id": material.id,
                                "unit": material.unit,
                                "quantity": round(material.daily * self.rng.uniform(10, 20)),
                            },
                            strict=False,
                        )
                    )
        return requests

    def _need(
        self, partner_id: str, site_id: str, material_id: str, pos: SimPosition, now: datetime
    ) -> NeedReported:
        return NeedReported.model_validate(
            {
                "event_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "partner_id": partner_id,
                "occurred_at": now,
                "need_id": f"need-{site_id}-{material_id}",
                "site_id": site_id,
                "material_id": material_id,
                "unit": pos.unit,
                "quantity": round(pos.daily * 7),
                "needed_by": (now.astimezone(UTC).date() + timedelta(days=2)).isoformat(),
                "criticality": Criticality.HOSPITAL,
            },
            strict=False,
        )
