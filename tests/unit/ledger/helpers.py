"""Builders for raw partner events, Kafka records and an alliance, shared by the ledger tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from schemas.alerts import (
    DeadLetter,
    MaterialBalance,
    MaterialBalancesReported,
    ShortageDetected,
    ShortageResolved,
)
from schemas.alliance import Alliance, CoverageThresholds, ShortageRules
from schemas.common import Criticality
from services.ledger.processor import Inbound, LedgerProcessor, Outcome

TOPIC = "partner-events"
BASE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = BASE.timestamp()
TODAY = BASE.date()

HOSPITAL = "klinikum-nord"
FACTORY = "werk-sued"
UTILITY = "stadtwerke"

RULES = ShortageRules(
    coverage={
        Criticality.HOSPITAL: CoverageThresholds(watch_days=20, critical_days=5),
        Criticality.NORMAL: CoverageThresholds(watch_days=7, critical_days=2),
        Criticality.CRITICAL_INFRASTRUCTURE: CoverageThresholds(watch_days=10, critical_days=4),
    }
)

_ids = itertools.count(1)


def new_id() -> str:
    return f"ev-{next(_ids):08d}"


def at(minutes: float = 0) -> str:
    """An ISO timestamp ``minutes`` after BASE (negative: before)."""
    return (BASE + timedelta(minutes=minutes)).isoformat()


def make_alliance(rules: ShortageRules = RULES) -> Alliance:
    def site(site_id: str) -> dict[str, Any]:
        return {"id": site_id, "name": site_id, "latitude": 48.1, "longitude": 11.5}

    return Alliance.model_validate(
        {
            "name": "Testverbund",
            "partners": [
                {
                    "id": HOSPITAL,
                    "name": "Klinikum Nord",
                    "sector": "hospital",
                    "region": "DE-BY",
                    "criticality": Criticality.HOSPITAL,
                    "sites": [site("lager-1"), site("lager-2")],
                },
                {
                    "id": FACTORY,
                    "name": "Werk Sued",
                    "sector": "metal",
                    "region": "DE-BW",
                    "criticality": Criticality.NORMAL,
                    "sites": [site("halle-1")],
                },
                {
                    "id": UTILITY,
                    "name": "Stadtwerke",
                    "sector": "utility",
                    "region": "DE-BY",
                    "criticality": Criticality.CRITICAL_INFRASTRUCTURE,
                    "sites": [site("netz-1")],
                },
            ],
            "shortage_rules": rules,
        }
    )


def position(
    site: str = "lager-1",
    material: str = "NACL-500ML",
    on_hand: float = 100,
    safety: float = 10,
    daily: float = 1,
    unit: str = "pcs",
) -> dict[str, Any]:
    return {
        "site_id": site,
        "material_id": material,
        "unit": unit,
        "on_hand": on_hand,
        "safety_stock": safety,
        "daily_consumption": daily,
    }


def stock(
    partner: str = HOSPITAL,
    *positions: dict[str, Any],
    minutes: float = 0,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "StockReported",
        "event_id": event_id or new_id(),
        "partner_id": partner,
        "occurred_at": at(minutes),
        "positions": list(positions) or [position()],
    }


def need(
    partner: str = HOSPITAL,
    need_id: str = "need-1",
    site: str = "lager-1",
    material: str = "NACL-500ML",
    quantity: float = 50,
    due: date | None = None,
    unit: str = "pcs",
    minutes: float = 0,
    criticality: str = "hospital",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "NeedReported",
        "event_id": event_id or new_id(),
        "partner_id": partner,
        "occurred_at": at(minutes),
        "need_id": need_id,
        "site_id": site,
        "material_id": material,
        "unit": unit,
        "quantity": quantity,
        "needed_by": (due or TODAY + timedelta(days=30)).isoformat(),
        "criticality": criticality,
    }


def offer(
    partner: str = FACTORY,
    offer_id: str = "offer-1",
    site: str = "halle-1",
    hours: float = 40,
    minutes: float = 0,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "CapacityOffered",
        "event_id": event_id or new_id(),
        "partner_id": partner,
        "occurred_at": at(minutes),
        "offer_id": offer_id,
        "site_id": site,
        "capability": "cnc-milling",
        "qualifications": ["iso-9001"],
        "hours": hours,
        "available_from": at(60 * 24),
        "available_until": at(60 * 24 * 8),
    }


def capacity_need(
    partner: str = HOSPITAL,
    need_id: str = "cneed-1",
    site: str = "lager-1",
    hours: float = 12,
    minutes: float = 0,
    capability: str = "sterilisation",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "CapacityNeeded",
        "event_id": event_id or new_id(),
        "partner_id": partner,
        "occurred_at": at(minutes),
        "need_id": need_id,
        "site_id": site,
        "capability": capability,
        "required_qualifications": ["iso-13485"],
        "hours": hours,
        "needed_by": (TODAY + timedelta(days=5)).isoformat(),
        "criticality": "hospital",
    }


def demand(
    partner: str = HOSPITAL,
    material: str = "MASK-FFP2",
    quantity: float = 500,
    minutes: float = 0,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "PurchaseDemandReported",
        "event_id": event_id or new_id(),
        "partner_id": partner,
        "occurred_at": at(minutes),
        "material_id": material,
        "unit": "pcs",
        "quantity": quantity,
    }


class Feed:
    """Turns event dicts into Kafka-like records with increasing offsets."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.offset = 0

    def raw(self, value: bytes | None, key: bytes | None, partition: int | None = None) -> Inbound:
        record = Inbound(
            topic=TOPIC,
            partition=self.partition if partition is None else partition,
            offset=self.offset,
            key=key,
            value=value,
        )
        self.offset += 1
        return record

    def __call__(self, event: dict[str, Any], partition: int | None = None) -> Inbound:
        return self.raw(orjson.dumps(event), event["partner_id"].encode(), partition)

    def batch(self, *events: dict[str, Any]) -> list[Inbound]:
        return [self(e) for e in events]


def detected(out: Outcome) -> list[ShortageDetected]:
    return [a for a in decode_alerts(out) if isinstance(a, ShortageDetected)]


def resolved(out: Outcome) -> list[ShortageResolved]:
    return [a for a in decode_alerts(out) if isinstance(a, ShortageResolved)]


def decode_alerts(out: Outcome) -> list[ShortageDetected | ShortageResolved]:
    alerts: list[ShortageDetected | ShortageResolved] = []
    for key, value in out.alerts:
        data = orjson.loads(value)
        model = ShortageDetected if data["type"] == "ShortageDetected" else ShortageResolved
        alert = model.model_validate_json(value)
        assert key == alert.material_id.encode()
        alerts.append(alert)
    return alerts


def dead_letters(out: Outcome) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(value) for _, value in out.dead_letters]


def balances(processor: LedgerProcessor, now: float = NOW) -> dict[tuple[str, str], Any]:
    """Latest reported balance per (material, unit), decoded with the contract."""
    found: dict[tuple[str, str], MaterialBalance] = {}
    for _, value in processor.balance_reports(now):
        report = MaterialBalancesReported.model_validate_json(value)
        for balance in report.balances:
            found[(balance.material_id, balance.unit.value)] = balance
    return found


def snapshot(state: Any) -> dict[str, Any]:
    """Everything observable about a PartitionState, for equality checks."""
    return {
        "positions": dict(state.positions),
        "needs": dict(state.needs),
        "need_totals": dict(state.need_totals),
        "offers": dict(state.offers.current),
        "capacity_needs": dict(state.capacity_needs.current),
        "purchase_demands": dict(state.purchase_demands.current),
        "withdrawn_capacity_needs": dict(state.capacity_needs.withdrawn),
        "withdrawn_purchase_demands": dict(state.purchase_demands.withdrawn),
        "withdrawn_needs": dict(state.withdrawn_needs),
        "withdrawn_offers": dict(state.offers.withdrawn),
        "last_seen": dict(state.last_seen),
        "dedup_size": len(state.dedup),
        "balances": state.balances.all(),
        "shortages": dict(state.shortages.open),
    }
