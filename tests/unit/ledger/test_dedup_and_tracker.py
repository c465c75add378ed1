"""The event id window and the shortage tracker on their own."""

from __future__ import annotations

from schemas.common import Severity
from services.ledger.dedup import EventIdWindow
from services.ledger.shortage import NO_SHORTAGE, Assessment, ShortageTracker, Transition

KEY = ("p-one", "s1", "M-1")


def test_window_forgets_oldest_first() -> None:
    window = EventIdWindow(capacity=3)
    window.extend(["a", "b", "c", "a"])  # re-adding does not refresh or grow
    assert len(window) == 3
    window.add("d")
    assert "a" not in window
    assert all(i in window for i in "bcd")


def test_tracker_transitions() -> None:
    tracker = ShortageTracker()
    watch = Assessment(Severity.WATCH, ("low_coverage",))
    critical = Assessment(Severity.CRITICAL, ("stock_out",))
    assert tracker.update(KEY, NO_SHORTAGE) is None
    change = tracker.update(KEY, watch)
    assert change is not None
    assert (change.transition, change.severity, change.previous) == (
        Transition.STARTED,
        Severity.WATCH,
        None,
    )
    assert tracker.update(KEY, watch) is None
    change = tracker.update(KEY, critical)
    assert change is not None
    assert (change.transition, change.previous, change.causes) == (
        Transition.WORSENED,
        Severity.WATCH,
        ("stock_out",),
    )
    change = tracker.update(KEY, watch)
    assert change is not None and change.transition is Transition.EASED
    change = tracker.update(KEY, NO_SHORTAGE)
    assert change is not None
    assert (change.transition, change.severity, change.previous) == (
        Transition.RESOLVED,
        None,
        Severity.WATCH,
    )
    assert tracker.open == {}


def test_tracker_counts_by_severity() -> None:
    tracker = ShortageTracker()
    tracker.update(KEY, Assessment(Severity.WATCH, ("low_coverage",)))
    tracker.update(("p-one", "s2", "M-1"), Assessment(Severity.CRITICAL, ("stock_out",)))
    tracker.update(("p-two", "s1", "M-1"), Assessment(Severity.CRITICAL, ("stock_out",)))
    assert tracker.counts() == {Severity.WATCH: 1, Severity.SHORTAGE: 0, Severity.CRITICAL: 2}
