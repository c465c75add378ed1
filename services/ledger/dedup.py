"""A bounded window of recently seen event ids, for de-duplication."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def event_key(partner_id: str, event_id: str) -> str:
    """What de-duplication remembers of a partner event: its id *per partner* (partners
    choose their ids; two partners may use the same one, e.g. ERP export counters)."""
    return f"{partner_id}/{event_id}"


class EventIdWindow:
    """Remembers the last ``capacity`` event ids; older ones are forgotten (FIFO)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        if event_id in self._ids:
            return
        self._ids.add(event_id)
        self._order.append(event_id)
        while len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())

    def extend(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self.add(event_id)
