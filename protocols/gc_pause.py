"""Pause Python's cyclic garbage collector while a run builds thousands of objects.

A 50 x 50 reallocation run makes ~2,600 order and fulfilment objects plus the
problem tuples; every 700 allocations the collector scans the young objects again
(~20 young and 2 middle collections per run, 2-4 ms), and every few runs a full
collection of all live objects (the snapshot included) lands inside one. None of
these objects form reference cycles, so reference counting frees them either way;
with the collector paused the young objects are scanned once, after the run.
Reference-counted across threads: the collector is re-enabled when the last
concurrent run ends, and only if it was enabled before the first one started.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from protocols.run_scoped import RunScoped


def _pause() -> Callable[[], None] | None:
    was_enabled = gc.isenabled()
    gc.disable()
    return gc.enable if was_enabled else None


#: ``with gc_paused():`` the collector is off while any run is in progress.
gc_paused = RunScoped(_pause)
