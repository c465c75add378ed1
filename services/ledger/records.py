"""Plain records the ledger keeps per partition (pure data, cheap to copy and encode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PositionKey = tuple[str, str, str]  # partner, site, material


class PositionRecord(NamedTuple):
    """One position (a tuple: built once per reported position, so it must be cheap)."""

    unit: str
    on_hand: float
    safety_stock: float
    daily_consumption: float
    as_of: float  # epoch seconds of the partner's occurred_at
    event_id: str

    @property
    def surplus(self) -> float:
        """Stock above safety stock (what an agreement may share)."""
        return max(0.0, self.on_hand - self.safety_stock)

    @property
    def coverage_days(self) -> float | None:
        if self.daily_consumption <= 0:
            return None
        return self.on_hand / self.daily_consumption


@dataclass(slots=True, frozen=True)
class NeedRecord:
    site_id: str
    material_id: str
    unit: str
    quantity: float
    needed_by: str  # ISO date
    criticality: str
    as_of: float
    event_id: str


@dataclass(slots=True, frozen=True)
class OfferRecord:
    site_id: str
    capability: str
    qualifications: tuple[str, ...]
    hours: float
    available_from: float
    available_until: float
    as_of: float
    event_id: str


@dataclass(slots=True, frozen=True)
class CapacityNeedRecord:
    site_id: str
    capability: str
    required_qualifications: tuple[str, ...]
    hours: float
    needed_by: str  # ISO date
    criticality: str
    as_of: float
    event_id: str


@dataclass(slots=True, frozen=True)
class PurchaseDemandRecord:
    unit: str
    quantity: float
    as_of: float
    event_id: str
