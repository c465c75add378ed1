"""The coordinator's replica of the alliance state, folded from the ledger's changelog."""

from __future__ import annotations

from typing import Any

import orjson

from services.ledger.state import PartitionState


class AllianceReplica:
    """PartitionState per changelog partition, with the offsets folded so far."""

    def __init__(self) -> None:
        self.states: dict[int, PartitionState] = {}
        self.offsets: dict[int, int] = {}

    def apply(self, partition: int, offset: int, raw: bytes) -> None:
        record: dict[str, Any] = orjson.loads(raw)
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = PartitionState(partition)
        state.restore(record)
        self.offsets[partition] = offset + 1

    def has_event(self, partner_id: str, event_id: str) -> bool:
        """True once the changes of a partner's event have been folded into the replica."""
        return any(state.has_event(partner_id, event_id) for state in self.states.values())

    def balance(self, material: str) -> tuple[float, float]:
        """Alliance-wide (open need, surplus above safety stock) of a material, all units."""
        need = surplus = 0.0
        for state in self.states.values():
            balances = state.balances
            for key in list(balances.need):
                if key[0] == material:
                    need += balances.total_need(key)
            for key in list(balances.surplus):
                if key[0] == material:
                    surplus += balances.total_surplus(key)
        return need, surplus
