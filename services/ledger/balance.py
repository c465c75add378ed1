"""Incremental per-material balance: total open need vs. total surplus above safety stock."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

MaterialKey = tuple[str, str]  # material, unit


@dataclass(frozen=True, slots=True)
class Balance:
    material_id: str
    unit: str
    total_need: float
    total_surplus: float
    partners: int


class MaterialBalances:
    def __init__(self) -> None:
        self.need: defaultdict[MaterialKey, float] = defaultdict(float)
        self.surplus: defaultdict[MaterialKey, float] = defaultdict(float)
        self.holders: defaultdict[MaterialKey, Counter[str]] = defaultdict(Counter)
        self.dirty: set[MaterialKey] = set()

    def add_surplus(self, key: MaterialKey, partner: str, delta: float, holder_delta: int) -> None:
        self.surplus[key] += delta
        if holder_delta:
            holders = self.holders[key]
            holders[partner] += holder_delta
            if holders[partner] <= 0:
                del holders[partner]
        self.dirty.add(key)

    def add_need(self, key: MaterialKey, delta: float) -> None:
        self.need[key] += delta
        self.dirty.add(key)

    def get(self, key: MaterialKey) -> Balance:
        return Balance(
            material_id=key[0],
            unit=key[1],
            total_need=max(0.0, round(self.need.get(key, 0.0), 9)),
            total_surplus=max(0.0, round(self.surplus.get(key, 0.0), 9)),
            partners=len(self.holders.get(key, ())),
        )

    def take_dirty(self) -> list[Balance]:
        dirty, self.dirty = self.dirty, set()
        return [self.get(key) for key in sorted(dirty)]

    def all(self) -> list[Balance]:
        """Balances of materials someone holds or needs (emptied entries are left out)."""
        keys = set(self.need) | set(self.surplus)
        balances = [self.get(key) for key in sorted(keys)]
        return [b for b in balances if b.partners or b.total_need or b.total_surplus]
