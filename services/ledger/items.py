"""Items a partner reports under its own ids: capacity offers, capacity needs, purchase demands.

Each kind is an :class:`ItemBook`: the newest report of an item wins, a report of zero
withdraws it, and a withdrawal is remembered so that an older event arriving late cannot
bring the item back. Rows are the changelog's JSON arrays; ``ITEM_KINDS`` says how a row
of each kind becomes a key, a record (or ``None`` for a withdrawal) and its time.

Pure data and functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from schemas.events import CapacityNeeded, CapacityOffered, PurchaseDemandReported
from services.ledger.records import CapacityNeedRecord, OfferRecord, PurchaseDemandRecord

ItemKey = tuple[str, str]  # partner, item id (the material for purchase demands)
Row = list[Any]


class _Timed(Protocol):
    @property
    def as_of(self) -> float: ...


R = TypeVar("R", bound=_Timed)


class ItemBook(Generic[R]):
    """Current items of one kind, and when withdrawn ones were withdrawn."""

    __slots__ = ("current", "withdrawn")

    def __init__(self) -> None:
        self.current: dict[ItemKey, R] = {}
        self.withdrawn: dict[ItemKey, float] = {}

    def accepts(self, key: ItemKey, as_of: float) -> bool:
        """Whether a report of ``as_of`` is not older than what the book holds for ``key``."""
        old = self.current.get(key)
        stored = old.as_of if old is not None else self.withdrawn.get(key)
        return stored is None or stored <= as_of

    def put(self, key: ItemKey, record: R | None, as_of: float) -> None:
        if record is not None:
            self.current[key] = record
            self.withdrawn.pop(key, None)
        else:
            self.current.pop(key, None)
            self.withdrawn[key] = as_of

    def drop_partner(self, partner: str) -> None:
        for mapping in (self.current, self.withdrawn):
            for key in [k for k in mapping if k[0] == partner]:
                del mapping[key]


# -- rows: event -> row, row -> (key, record or None, as_of) -------------------------------
def offer_row(event: CapacityOffered) -> Row:
    return [
        event.partner_id,
        event.offer_id,
        event.site_id,
        event.capability,
        list(event.qualifications),
        event.hours,
        event.available_from.timestamp(),
        event.available_until.timestamp(),
        event.occurred_at.timestamp(),
        event.event_id,
    ]


def offer_item(row: Row) -> tuple[ItemKey, OfferRecord | None, float]:
    partner, offer_id, site, capability, quals, hours, start, until, as_of, event_id = row
    record = (
        OfferRecord(site, capability, tuple(quals), hours, start, until, as_of, event_id)
        if hours > 0
        else None
    )
    return (partner, offer_id), record, as_of


def capacity_need_row(event: CapacityNeeded) -> Row:
    return [
        event.partner_id,
        event.need_id,
        event.site_id,
        event.capability,
        list(event.required_qualifications),
        event.hours,
        event.needed_by.isoformat(),
        event.criticality.value,
        event.occurred_at.timestamp(),
        event.event_id,
    ]


def capacity_need_item(row: Row) -> tuple[ItemKey, CapacityNeedRecord | None, float]:
    partner, need_id, site, capability, quals, hours, needed_by, criticality, as_of, event_id = row
    record = (
        CapacityNeedRecord(
            site, capability, tuple(quals), hours, needed_by, criticality, as_of, event_id
        )
        if hours > 0
        else None
    )
    return (partner, need_id), record, as_of


def demand_row(event: PurchaseDemandReported) -> Row:
    return [
        event.partner_id,
        event.material_id,
        event.unit.value,
        event.quantity,
        event.occurred_at.timestamp(),
        event.event_id,
    ]


def demand_item(row: Row) -> tuple[ItemKey, PurchaseDemandRecord | None, float]:
    partner, material, unit, quantity, as_of, event_id = row
    record = PurchaseDemandRecord(unit, quantity, as_of, event_id) if quantity > 0 else None
    return (partner, material), record, as_of


@dataclass(frozen=True)
class ItemKind:
    """One kind of item: its changelog key and how a row becomes a book entry."""

    changelog_key: str
    item: Callable[[Row], tuple[ItemKey, Any, float]]


OFFERS = ItemKind("offer", offer_item)
CAPACITY_NEEDS = ItemKind("cneed", capacity_need_item)
PURCHASE_DEMANDS = ItemKind("pdem", demand_item)
ITEM_KINDS: tuple[ItemKind, ...] = (OFFERS, CAPACITY_NEEDS, PURCHASE_DEMANDS)
