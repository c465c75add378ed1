"""Full garbage collections only at quiet moments, and frozen survivors afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.common.gc_control import (
    DEFERRED_THRESHOLDS,
    QuietCollector,
    defer_full_collections,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def allocate_into_middle_generation() -> list[list[int]]:
    """Enough tracked objects that at least one middle-generation collection ran."""
    gc.set_threshold(100, 2, 1_000_000_000)
    gc.collect()
    kept = [[i] for i in range(2_000)]
    assert gc.get_count()[2] > 0
    return kept


def full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def test_deferred_thresholds_keep_young_collections_and_stop_full_ones() -> None:
    defer_full_collections()
    assert gc.get_threshold() == DEFERRED_THRESHOLDS
    before = full_collections()
    kept = [[i] for i in range(200_000)]  # 20 young collections' worth
    assert full_collections() == before
    assert len(kept) == 200_000


def test_busy_service_is_not_interrupted_until_forced() -> None:
    clock = Clock()
    collector = QuietCollector(min_interval_s=10, force_after_s=300, clock=clock)
    kept = allocate_into_middle_generation()
    clock.now += 60
    before = full_collections()
    assert collector.tick(busy=True) is None
    assert full_collections() == before
    clock.now += 300
    assert collector.tick(busy=True) == "collect"
    assert full_collections() == before + 1
    assert kept


def test_idle_service_collects_and_freezes_the_survivors() -> None:
    clock = Clock()
    collector = QuietCollector(min_interval_s=10, clock=clock)
    kept = allocate_into_middle_generation()
    clock.now += 5
    assert collector.tick(busy=False) is None  # too soon after the last one
    clock.now += 10
    assert collector.tick(busy=False) == "collect"
    assert gc.get_freeze_count() >= len(kept)
    # nothing new reached the middle generation: no collection for nothing
    clock.now += 60
    assert gc.get_count()[2] == 0
    before = full_collections()
    assert collector.tick(busy=False) is None
    assert full_collections() == before


def test_frozen_objects_are_collected_again_every_thaw_interval() -> None:
    clock = Clock()
    collector = QuietCollector(min_interval_s=10, thaw_every_s=3600, clock=clock)
    allocate_into_middle_generation()
    clock.now += 20
    assert collector.tick(busy=False) == "collect"
    # a cycle among frozen objects becomes garbage: only a thaw frees it
    cycle: list[object] = []
    cycle.append(cycle)
    gc.freeze()
    del cycle
    clock.now += 3600
    frozen = gc.get_freeze_count()
    assert collector.tick(busy=False) == "thaw"
    assert gc.get_freeze_count() < frozen
