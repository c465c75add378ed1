"""Per-material balance: total open need vs. total surplus above safety stock.

Kept as each holder's part (partner and site), and summed with ``math.fsum`` when a
balance is read: running totals of float increments keep rounding residue, so one
partner's large figure, once corrected, would skew the material's balance for
everybody (1e12 reported, then 0, next to a need of 0.3 left 0.300048828).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

MaterialKey = tuple[str, str]  # material, unit
Holder = tuple[str, str]  # partner, site


@dataclass(frozen=True, slots=True)
class Balance:
    material_id: str
    unit: str
    total_need: float
    total_surplus: float
    partners: int


class MaterialBalances:
    def __init__(self) -> None:
        self.need: defaultdict[MaterialKey, dict[Holder, float]] = defaultdict(dict)
        self.surplus: defaultdict[MaterialKey, dict[Holder, float]] = defaultdict(dict)
        self.holders: defaultdict[MaterialKey, Counter[str]] = defaultdict(Counter)
        self.dirty: set[MaterialKey] = set()

    def set_surplus(self, key: MaterialKey, holder: Holder, surplus: float) -> None:
        """The surplus of ``holder``'s position (0 or less: none)."""
        parts = self.surplus[key]
        if surplus > 0:
            parts[holder] = surplus
        else:
            parts.pop(holder, None)
        self.dirty.add(key)

    def add_holder(self, key: MaterialKey, partner: str, delta: int) -> None:
        holders = self.holders[key]
        holders[partner] += delta
        if holders[partner] <= 0:
            del holders[partner]
        self.dirty.add(key)

    def set_need(self, key: MaterialKey, holder: Holder, quantity: float) -> None:
        """The open need of ``holder`` in this unit (0: none)."""
        parts = self.need[key]
        if quantity > 0:
            parts[holder] = quantity
        else:
            parts.pop(holder, None)
        self.dirty.add(key)

    def total_need(self, key: MaterialKey) -> float:
        parts = self.need.get(key)
        return math.fsum(parts.values()) if parts else 0.0

    def total_surplus(self, key: MaterialKey) -> float:
        parts = self.surplus.get(key)
        return math.fsum(parts.values()) if parts else 0.0

    def get(self, key: MaterialKey) -> Balance:
        return Balance(
            material_id=key[0],
            unit=key[1],
            total_need=round(self.total_need(key), 9),
            total_surplus=round(self.total_surplus(key), 9),
            partners=len(self.holders.get(key, ())),
        )

    def take_dirty(self) -> list[Balance]:
        dirty, self.dirty = self.dirty, set()
        return [self.get(key) for key in sorted(dirty)]

    def all(self) -> list[Balance]:
        """Balances of materials someone holds or needs (emptied entries are left out)."""
        keys = set(self.need) | set(self.surplus) | set(self.holders)
        balances = [self.get(key) for key in sorted(keys)]
        return [b for b in balances if b.partners or b.total_need or b.total_surplus]
