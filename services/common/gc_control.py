"""Full garbage collections at quiet moments instead of in the middle of a run.

A service that keeps many long-lived objects (the coordinator holds every run's
decision: ~8,000 tracked objects per 50 x 50 run) pays for Python's automatic
full collections with pauses that grow with the heap: measured in the coordinator
of the latency benchmark, 44 full collections in 41 runs, 130-250 ms each, landing
inside the trigger-to-decision path (snapshot, record, publish) and making its p99.

:func:`defer_full_collections` stops the automatic full collections (young and
middle generations are still collected as usual), and :class:`QuietCollector`
runs them when the service says it is idle: ``gc.collect()`` followed by
``gc.freeze()``, so the survivors move to the permanent generation and the next
quiet collection scans only what was allocated since (one run's worth, a few ms).
Frozen objects are still freed by reference counting; only cycles among them would
outlive their use, so every ``thaw_every_s`` the frozen objects are collected once
more (``gc.unfreeze()`` first), again at a quiet moment. When the service is never
idle, a collection happens anyway after ``force_after_s``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: young collections every 10,000 net allocations, middle every 10 young; the third
#: threshold is so high that full collections only run through :class:`QuietCollector`
DEFERRED_THRESHOLDS = (10_000, 10, 1_000_000_000)


def defer_full_collections() -> None:
    gc.set_threshold(*DEFERRED_THRESHOLDS)


@dataclass
class QuietCollector:
    """Decides, tick by tick, whether now is the time for a full collection."""

    min_interval_s: float = 10.0
    force_after_s: float = 300.0
    thaw_every_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _last: float = field(init=False)
    _last_thaw: float = field(init=False)

    def __post_init__(self) -> None:
        self._last = self._last_thaw = self.clock()

    def tick(self, busy: bool) -> str | None:
        """Collect if due: ``"thaw"`` (frozen objects too), ``"collect"`` or None."""
        now = self.clock()
        since = now - self._last
        if since < self.min_interval_s or (busy and since < self.force_after_s):
            return None
        if gc.get_count()[2] == 0 and now - self._last_thaw < self.thaw_every_s:
            return None  # nothing reached the middle generation since the last one
        kind = "collect"
        if now - self._last_thaw >= self.thaw_every_s:
            gc.unfreeze()
            self._last_thaw = now
            kind = "thaw"
        gc.collect()
        gc.freeze()
        self._last = self.clock()
        return kind
