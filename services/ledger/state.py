"""The alliance state of one Kafka partition, and how events and changelog rows change it.

Pure: no I/O, no clocks (times are passed in). Live events and changelog replay go
through the same ``set_*`` functions, so a restarted ledger rebuilds exactly the
state it had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from schemas.events import (
    CapacityNeeded,
    CapacityOffered,
    NeedReported,
    PurchaseDemandReported,
    StockReported,
)
from services.ledger.balance import MaterialBalances
from services.ledger.changelog import position_rows
from services.ledger.dedup import EventIdWindow, event_key
from services.ledger.items import (
    CAPACITY_NEEDS,
    ITEM_KINDS,
    OFFERS,
    PURCHASE_DEMANDS,
    ItemBook,
    ItemKind,
    Row,
    capacity_need_row,
    demand_row,
    offer_row,
)
from services.ledger.records import (
    CapacityNeedRecord,
    NeedRecord,
    OfferRecord,
    PositionKey,
    PositionRecord,
    PurchaseDemandRecord,
)
from services.ledger.shortage import ShortageTracker

_new_tuple = tuple.__new__

# Changelog rows: lists, so they encode compactly as JSON arrays.
PositionRow = list[Any]  # partner, site, material, unit, on_hand, safety, daily, as_of, event_id
NeedRow = list[Any]  # partner, need_id, site, material, unit, qty, needed_by, crit, as_of, id


@dataclass
class Applied:
    """What one batch changed in a partition: the changelog content and the touched keys."""

    # keys whose position changed, in order; the changelog holds their final records
    position_keys: dict[PositionKey, None] = field(default_factory=dict)
    needs: list[NeedRow] = field(default_factory=list)
    # rows of offers, capacity needs and purchase demands, by changelog key (items.ITEM_KINDS)
    items: dict[str, list[Row]] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)
    # keys whose needs changed (shortage re-assessed together with position_keys)
    touched: set[PositionKey] = field(default_factory=set)
    # the need/offer event that last changed a key (for positions: the record's event id)
    sources: dict[PositionKey, str] = field(default_factory=dict)
    stale_positions: int = 0
    # partners removed from the alliance in this batch (partner -> when), and positions
    # dropped by the retention sweep: [partner, site, material]
    removed: dict[str, float] = field(default_factory=dict)
    dropped: list[list[str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.event_ids or self.dropped)


class PartitionState:
    """Positions, needs, capacity offers and needs, purchase demands, freshness and open
    shortages of one partition."""

    def __init__(self, partition: int, dedup_capacity: int = 200_000) -> None:
        self.partition = partition
        self.positions: dict[PositionKey, PositionRecord] = {}
        self.needs: dict[tuple[str, str], NeedRecord] = {}
        self.need_totals: dict[PositionKey, float] = {}
        # the open needs behind each total: need id -> (unit, quantity)
        self._needs_at: dict[PositionKey, dict[str, tuple[str, float]]] = {}
        # when a need was withdrawn, so an older event cannot bring it back
        self.withdrawn_needs: dict[tuple[str, str], float] = {}
        self.offers: ItemBook[OfferRecord] = ItemBook()
        self.capacity_needs: ItemBook[CapacityNeedRecord] = ItemBook()
        self.purchase_demands: ItemBook[PurchaseDemandRecord] = ItemBook()
        self._books: dict[str, ItemBook[Any]] = {
            OFFERS.changelog_key: self.offers,
            CAPACITY_NEEDS.changelog_key: self.capacity_needs,
            PURCHASE_DEMANDS.changelog_key: self.purchase_demands,
        }
        self.last_seen: dict[str, float] = {}
        # partners removed from the alliance (partner -> when): their events are ignored
        self.removed: dict[str, float] = {}
        self.dedup = EventIdWindow(dedup_capacity)
        self.balances = MaterialBalances()
        self.shortages = ShortageTracker()

    # -- shared by live events and replay -------------------------------------------------
    def set_position(
        self,
        partner: str,
        site: str,
        material: str,
        unit: str,
        on_hand: float,
        safety: float,
        daily: float,
        as_of: float,
        event_id: str,
    ) -> PositionKey:
        key = (partner, site, material)
        positions = self.positions
        old = positions.get(key)
        # tuple.__new__ skips the NamedTuple's Python-level constructor (hot path)
        positions[key] = _new_tuple(PositionRecord, (unit, on_hand, safety, daily, as_of, event_id))
        surplus = on_hand - safety if on_hand > safety else 0.0
        balances = self.balances
        if old is not None and old.unit == unit:
            # the common case: no change of holders, only the surplus may move
            if surplus != old.surplus:
                balances.set_surplus((material, unit), (partner, site), surplus)
            return key
        if old is not None:
            balances.set_surplus((material, old.unit), (partner, site), 0.0)
            balances.add_holder((material, old.unit), partner, -1)
        balances.set_surplus((material, unit), (partner, site), surplus)
        balances.add_holder((material, unit), partner, 1)
        return key

    def set_need(self, row: NeedRow) -> PositionKey:
        partner, need_id, site, material, unit, qty, needed_by, criticality, as_of, event_id = row
        old = self.needs.get((partner, need_id))
        if old is not None:
            self._open_need(partner, need_id, old.site_id, old.material_id, old.unit, 0.0)
        if qty > 0:
            self.needs[(partner, need_id)] = NeedRecord(
                site, material, unit, qty, needed_by, criticality, as_of, event_id
            )
            self._open_need(partner, need_id, site, material, unit, qty)
            self.withdrawn_needs.pop((partner, need_id), None)
        else:
            self.needs.pop((partner, need_id), None)
            self.withdrawn_needs[(partner, need_id)] = as_of
        return (partner, site, material)

    def need_unit_conflict(self, event: NeedReported) -> str | None:
        """Why a need cannot be taken in its unit (None: it can): its site's stock of the
        material, or another open need for it, is counted in another unit, and the two
        would be added up. A withdrawal (quantity 0) is taken in any unit."""
        if event.quantity <= 0:
            return None
        partner, site, material = event.partner_id, event.site_id, event.material_id
        unit = event.unit.value
        key = (partner, site, material)
        position = self.positions.get(key)
        if position is not None and position.unit != unit:
            return (
                f"need {event.need_id!r} is in {unit}, but the stock of {material} at {site}"
                f" is reported in {position.unit}"
            )
        for other_id, (other_unit, _) in self._needs_at.get(key, {}).items():
            if other_id != event.need_id and other_unit != unit:
                return (
                    f"need {event.need_id!r} is in {unit}, but need {other_id!r} for {material}"
                    f" at {site} is in {other_unit}"
                )
        return None

    def _open_need(
        self, partner: str, need_id: str, site: str, material: str, unit: str, qty: float
    ) -> None:
        """Set one need's quantity (0: closed) and the totals of its position key and unit,
        summed again from the open needs (``math.fsum``): running sums of increments kept
        rounding residue after a large need was withdrawn, and the key's shortage was
        then assessed over needs that no longer existed."""
        key = (partner, site, material)
        needs = self._needs_at.setdefault(key, {})
        if qty > 0:
            needs[need_id] = (unit, qty)
        else:
            needs.pop(need_id, None)
        if needs:
            self.need_totals[key] = math.fsum(q for _, q in needs.values())
        else:
            del self._needs_at[key]
            self.need_totals.pop(key, None)
        in_unit = math.fsum(q for u, q in needs.values() if u == unit)
        self.balances.set_need((material, unit), (partner, site), in_unit)

    def set_item(self, kind: ItemKind, row: Row) -> None:
        key, record, as_of = kind.item(row)
        self._books[kind.changelog_key].put(key, record, as_of)

    def remove_position(self, key: PositionKey) -> bool:
        old = self.positions.pop(key, None)
        if old is None:
            return False
        self.balances.set_surplus((key[2], old.unit), (key[0], key[1]), 0.0)
        self.balances.add_holder((key[2], old.unit), key[0], -1)
        return True

    def remove_partner(self, partner: str, at: float) -> set[PositionKey]:
        """Forget everything of ``partner`` (erasure); returns the keys whose shortage must be
        re-assessed (they resolve: there is nothing left to assess)."""
        touched = {key for key in self.positions if key[0] == partner}
        for key in touched:
            self.remove_position(key)
        for (owner, need_id), need in list(self.needs.items()):
            if owner == partner:
                self._open_need(partner, need_id, need.site_id, need.material_id, need.unit, 0.0)
                del self.needs[(owner, need_id)]
                touched.add((partner, need.site_id, need.material_id))
        for owner_key in [k for k in self.withdrawn_needs if k[0] == partner]:
            del self.withdrawn_needs[owner_key]
        for book in self._books.values():
            book.drop_partner(partner)
        touched |= {key for key in self.shortages.open if key[0] == partner}
        self.last_seen.pop(partner, None)
        self.removed[partner] = at
        return touched

    def expired_positions(self, cutoff: float) -> list[PositionKey]:
        """Positions not updated since ``cutoff`` (epoch seconds): the retention sweep."""
        return [key for key, record in self.positions.items() if record.as_of < cutoff]

    def mark_seen(self, partner: str, as_of: float) -> None:
        if as_of > self.last_seen.get(partner, float("-inf")):
            self.last_seen[partner] = as_of

    # -- live events ----------------------------------------------------------------------
    def apply_stock(self, event: StockReported, applied: Applied) -> None:
        as_of = event.occurred_at.timestamp()
        partner = event.partner_id
        event_id = event.event_id
        positions = self.positions
        set_position = self.set_position
        changed = applied.position_keys
        for p in event.positions:
            site, material = p.site_id, p.material_id
            old = positions.get((partner, site, material))
            if old is not None and old.as_of > as_of:
                applied.stale_positions += 1
                continue
            key = set_position(
                partner,
                site,
                material,
                p.unit,
                p.on_hand,
                p.safety_stock,
                p.daily_consumption,
                as_of,
                event_id,
            )
            changed[key] = None
            applied.sources.pop(key, None)
        self._record(partner, event_id, as_of, applied)

    def apply_need(self, event: NeedReported, applied: Applied) -> None:
        as_of = event.occurred_at.timestamp()
        old = self.needs.get((event.partner_id, event.need_id))
        stored = old.as_of if old else self.withdrawn_needs.get((event.partner_id, event.need_id))
        if stored is None or stored <= as_of:
            row = [
                event.partner_id,
                event.need_id,
                event.site_id,
                event.material_id,
                event.unit.value,
                event.quantity,
                event.needed_by.isoformat(),
                event.criticality.value,
                as_of,
                event.event_id,
            ]
            if old is not None:
                old_key = (event.partner_id, old.site_id, old.material_id)
                applied.touched.add(old_key)
                applied.sources[old_key] = event.event_id
            key = self.set_need(row)
            applied.touched.add(key)
            applied.sources[key] = event.event_id
            applied.needs.append(row)
        self._record(event.partner_id, event.event_id, as_of, applied)

    def apply_offer(self, event: CapacityOffered, applied: Applied) -> None:
        self._apply_item(OFFERS, offer_row(event), event.event_id, applied)

    def apply_capacity_need(self, event: CapacityNeeded, applied: Applied) -> None:
        self._apply_item(CAPACITY_NEEDS, capacity_need_row(event), event.event_id, applied)

    def apply_demand(self, event: PurchaseDemandReported, applied: Applied) -> None:
        self._apply_item(PURCHASE_DEMANDS, demand_row(event), event.event_id, applied)

    def _apply_item(self, kind: ItemKind, row: Row, event_id: str, applied: Applied) -> None:
        key, _, as_of = kind.item(row)
        if self._books[kind.changelog_key].accepts(key, as_of):
            self.set_item(kind, row)
            applied.items.setdefault(kind.changelog_key, []).append(row)
        self._record(key[0], event_id, as_of, applied)

    def has_event(self, partner: str, event_id: str) -> bool:
        """Whether this partner's event is applied (and within the de-duplication window)."""
        return event_key(partner, event_id) in self.dedup

    def _record(self, partner: str, event_id: str, as_of: float, applied: Applied) -> None:
        key = event_key(partner, event_id)
        self.dedup.add(key)
        self.mark_seen(partner, as_of)
        applied.event_ids.append(key)
        if as_of > applied.seen.get(partner, float("-inf")):
            applied.seen[partner] = as_of

    # -- replay ---------------------------------------------------------------------------
    def restore(self, record: dict[str, Any]) -> set[PositionKey]:
        """Apply one changelog record; returns the keys whose shortage must be re-assessed."""
        touched: set[PositionKey] = set()
        for args in position_rows(record):
            touched.add(self.set_position(*args))
        for row in record.get("need", ()):
            old = self.needs.get((row[0], row[1]))
            if old is not None:
                touched.add((row[0], old.site_id, old.material_id))
            touched.add(self.set_need(row))
        for kind in ITEM_KINDS:
            for row in record.get(kind.changelog_key, ()):
                self.set_item(kind, row)
        self.dedup.extend(record.get("ids", ()))
        for partner, as_of in record.get("seen", {}).items():
            self.mark_seen(partner, as_of)
        for partner, site, material in record.get("drop", ()):
            if self.remove_position((partner, site, material)):
                touched.add((partner, site, material))
        for partner, at in record.get("rm", ()):
            touched |= self.remove_partner(partner, at)
        return touched
