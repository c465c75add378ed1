"""Which runs' decisions are being published, and which must be published again.

A run's decision is published by the task that solved it, by a tick that expired
its orders, or again after a refused publish or a restart. These may overlap for
one run (a partner declines an order of revision N while N's orders are still
going out, and revision N+1 is solved meanwhile), so:

- holds are counted: one publisher ending does not release another's hold (a held
  run is left out of checkpoints until its messages are out);
- each run has a lock: one publication at a time, so a run's messages go out in
  revision order and a re-publish never interleaves with a newer revision's;
- ``unpublished`` holds the runs whose latest revision must be published again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from services.coordinator.core import Publish


class Publications:
    def __init__(self) -> None:
        self._holds: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        #: runs whose latest revision was refused by the broker or cut short by a stop
        self.unpublished: set[str] = set()

    @contextmanager
    def held(self, run_ids: Iterable[str]) -> Iterator[None]:
        ids = list(run_ids)
        self._holds.update(ids)
        try:
            yield
        finally:
            for run_id in ids:
                self._holds[run_id] -= 1
                if self._holds[run_id] <= 0:
                    del self._holds[run_id]

    def held_ids(self) -> set[str]:
        return set(self._holds)

    def busy(self) -> bool:
        return bool(self._holds)

    def lock(self, run_id: str) -> asyncio.Lock:
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
        return lock

    def forget(self, run_ids: Iterable[str]) -> None:
        """Runs dropped by retention."""
        for run_id in run_ids:
            lock = self._locks.get(run_id)
            if lock is not None and not lock.locked():
                del self._locks[run_id]
            self.unpublished.discard(run_id)


@dataclass
class TickBacklog:
    """Expiry notices the broker refused, the runs they changed and the re-plans they
    cause: the runs stay out of checkpoints and are not re-planned until the notices are
    out (a checkpoint or a new revision must not get ahead of them)."""

    messages: list[Publish] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)
    replan: list[str] = field(default_factory=list)

    def join(self, messages: list[Publish], runs: set[str], replan: list[str]) -> TickBacklog:
        return TickBacklog(
            self.messages + messages,
            self.runs | runs,
            self.replan + [r for r in replan if r not in self.replan],
        )
