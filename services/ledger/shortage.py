"""Shortage rules and the edge-triggered tracker (pure).

Rules, evaluated per partner x site x material with the thresholds of the
partner's criticality class:

* ``stock_out``: nothing on hand while something is consumed -> critical
* ``low_coverage``: coverage under ``critical_days`` -> critical,
  under ``watch_days`` -> watch
* ``below_safety_stock``: on hand under safety stock -> shortage
* ``need_reported``: an open explicit need -> shortage, critical when it is due
  within ``critical_days``

The severity is the highest any rule gives. The tracker emits a transition only
when a shortage starts, gets worse, or ends; easing without ending is recorded
silently (so a later worsening is reported again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum

from schemas.alliance import CoverageThresholds
from schemas.common import Severity
from services.ledger.records import PositionKey, PositionRecord


@dataclass(frozen=True, slots=True)
class Assessment:
    severity: Severity | None
    causes: tuple[str, ...]


NO_SHORTAGE = Assessment(None, ())


def assess(
    position: PositionRecord | None,
    need_quantity: float,
    need_due: date | None,
    thresholds: CoverageThresholds,
    today: date,
) -> Assessment:
    """Severity and causes for one partner x site x material."""
    rank = 0
    causes: list[str] = []
    if position is not None:
        daily = position.daily_consumption
        if daily > 0 and position.on_hand <= 0:
            causes.append("stock_out")
            rank = 3
        elif daily > 0:
            coverage = position.on_hand / daily
            if coverage < thresholds.critical_days:
                causes.append("low_coverage")
                rank = 3
            elif coverage < thresholds.watch_days:
                causes.append("low_coverage")
                rank = max(rank, 1)
        if position.on_hand < position.safety_stock:
            causes.append("below_safety_stock")
            rank = max(rank, 2)
    if need_quantity > 0:
        causes.append("need_reported")
        due_soon = need_due is not None and (need_due - today).days < thresholds.critical_days
        rank = max(rank, 3 if due_soon else 2)
    if rank == 0:
        return NO_SHORTAGE
    return Assessment(_BY_RANK[rank], tuple(causes))


_BY_RANK = {1: Severity.WATCH, 2: Severity.SHORTAGE, 3: Severity.CRITICAL}


class Transition(Enum):
    STARTED = "started"
    WORSENED = "worsened"
    EASED = "eased"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Change:
    key: PositionKey
    transition: Transition
    severity: Severity | None
    previous: Severity | None
    causes: tuple[str, ...]


class ShortageTracker:
    """Open shortages of one partition with their current severity."""

    def __init__(self) -> None:
        self.open: dict[PositionKey, Severity] = {}

    def update(self, key: PositionKey, assessment: Assessment) -> Change | None:
        """Record the new assessment; return the change if there is one to report."""
        previous = self.open.get(key)
        severity = assessment.severity
        if severity == previous:
            return None
        if severity is None:
            del self.open[key]
            return Change(key, Transition.RESOLVED, None, previous, ())
        self.open[key] = severity
        if previous is None:
            transition = Transition.STARTED
        elif severity.rank > previous.rank:
            transition = Transition.WORSENED
        else:
            transition = Transition.EASED
        return Change(key, transition, severity, previous, assessment.causes)

    def counts(self) -> dict[Severity, int]:
        result = dict.fromkeys(Severity, 0)
        for severity in list(self.open.values()):
            result[severity] += 1
        return result
