"""Each shortage rule with a triggering and a non-triggering case, thresholds per class."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.alliance import CoverageThresholds, ShortageRules
from schemas.common import Criticality, Severity
from services.ledger.processor import LedgerProcessor
from services.ledger.records import PositionRecord
from services.ledger.shortage import NO_SHORTAGE, Transition, assess

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    RULES,
    TODAY,
    UTILITY,
    Feed,
    detected,
    make_alliance,
    position,
    stock,
)

NORMAL = RULES.thresholds(Criticality.NORMAL)  # watch 7, critical 2
HOSPITAL_T = RULES.thresholds(Criticality.HOSPITAL)  # watch 20, critical 5


def pos(on_hand: float, safety: float = 0.0, daily: float = 0.0) -> PositionRecord:
    return PositionRecord("pcs", on_hand, safety, daily, 0.0, "ev-00000000")


# -- stock_out ---------------------------------------------------------------------------------


def test_stock_out_is_critical() -> None:
    result = assess(pos(0, safety=0, daily=5), 0, None, NORMAL, TODAY)
    assert result.severity is Severity.CRITICAL
    assert result.causes == ("stock_out",)


def test_empty_but_unused_is_not_a_stock_out() -> None:
    assert assess(pos(0, safety=0, daily=0), 0, None, NORMAL, TODAY) == NO_SHORTAGE


def test_stock_out_below_safety_names_both_causes() -> None:
    result = assess(pos(0, safety=10, daily=5), 0, None, NORMAL, TODAY)
    assert result.severity is Severity.CRITICAL
    assert set(result.causes) == {"stock_out", "below_safety_stock"}


# -- low_coverage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_hand", "expected"),
    [
        (1.9, Severity.CRITICAL),  # 1.9 days < critical 2
        (2.0, Severity.WATCH),  # exactly critical_days is not under it
        (6.9, Severity.WATCH),  # < watch 7
        (7.0, None),  # exactly watch_days is fine
        (50.0, None),
    ],
)
def test_low_coverage_thresholds(on_hand: float, expected: Severity | None) -> None:
    result = assess(pos(on_hand, safety=0, daily=1), 0, None, NORMAL, TODAY)
    assert result.severity is expected
    assert result.causes == (("low_coverage",) if expected else ())


def test_coverage_uses_daily_consumption() -> None:
    # 30 on hand at 10/day = 3 days: watch for normal (7/2), critical with 40/day (0.75 days)
    assert assess(pos(30, daily=10), 0, None, NORMAL, TODAY).severity is Severity.WATCH
    assert assess(pos(30, daily=40), 0, None, NORMAL, TODAY).severity is Severity.CRITICAL


def test_no_consumption_means_no_coverage_rule() -> None:
    assert assess(pos(1, safety=0, daily=0), 0, None, NORMAL, TODAY) == NO_SHORTAGE


# -- below_safety_stock ------------------------------------------------------------------------


def test_below_safety_stock_is_a_shortage() -> None:
    result = assess(pos(9, safety=10, daily=0), 0, None, NORMAL, TODAY)
    assert result.severity is Severity.SHORTAGE
    assert result.causes == ("below_safety_stock",)


def test_at_safety_stock_is_not_below() -> None:
    assert assess(pos(10, safety=10, daily=0), 0, None, NORMAL, TODAY) == NO_SHORTAGE


def test_below_safety_outranks_watch_coverage() -> None:
    # 5 days coverage (watch for normal) and below safety stock -> shortage
    result = assess(pos(5, safety=10, daily=1), 0, None, NORMAL, TODAY)
    assert result.severity is Severity.SHORTAGE
    assert set(result.causes) == {"low_coverage", "below_safety_stock"}


# -- need_reported -----------------------------------------------------------------------------


def test_need_reported_far_out_is_a_shortage() -> None:
    result = assess(None, 5, TODAY + timedelta(days=30), NORMAL, TODAY)
    assert result.severity is Severity.SHORTAGE
    assert result.causes == ("need_reported",)


def test_no_need_no_position_is_nothing() -> None:
    assert assess(None, 0, None, NORMAL, TODAY) == NO_SHORTAGE


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (-1, Severity.CRITICAL),  # overdue
        (0, Severity.CRITICAL),
        (1, Severity.CRITICAL),  # < critical 2
        (2, Severity.SHORTAGE),  # exactly critical_days is not "within"
        (10, Severity.SHORTAGE),
    ],
)
def test_need_due_soon_is_critical(days: int, expected: Severity) -> None:
    result = assess(None, 5, TODAY + timedelta(days=days), NORMAL, TODAY)
    assert result.severity is expected


def test_need_on_healthy_position_is_a_shortage() -> None:
    result = assess(pos(500, safety=10, daily=1), 5, TODAY + timedelta(days=30), NORMAL, TODAY)
    assert result.severity is Severity.SHORTAGE
    assert result.causes == ("need_reported",)


def test_due_soon_threshold_depends_on_class() -> None:
    due = TODAY + timedelta(days=4)
    assert assess(None, 5, due, NORMAL, TODAY).severity is Severity.SHORTAGE
    assert assess(None, 5, due, HOSPITAL_T, TODAY).severity is Severity.CRITICAL


# -- thresholds per criticality class ----------------------------------------------------------


def test_rules_fall_back_to_defaults_for_missing_class() -> None:
    rules = ShortageRules(
        coverage={Criticality.NORMAL: CoverageThresholds(watch_days=1, critical_days=0.5)}
    )
    assert rules.thresholds(Criticality.NORMAL).watch_days == 1
    assert rules.thresholds(Criticality.HOSPITAL) == ShortageRules().thresholds(
        Criticality.HOSPITAL
    )


@pytest.mark.parametrize(
    ("partner", "site", "on_hand", "expected"),
    [
        # 10 days of coverage: hospital (watch 20) watches, normal (watch 7) does not
        (HOSPITAL, "lager-1", 10, Severity.WATCH),
        (FACTORY, "halle-1", 10, None),
        (UTILITY, "netz-1", 10, None),  # watch 10: exactly 10 is fine
        (UTILITY, "netz-1", 9.5, Severity.WATCH),
        # 4.5 days: critical for hospital (5), watch for normal (2), watch for utility (4)
        (HOSPITAL, "lager-1", 4.5, Severity.CRITICAL),
        (FACTORY, "halle-1", 4.5, Severity.WATCH),
        (UTILITY, "netz-1", 4.5, Severity.WATCH),
        (UTILITY, "netz-1", 3.5, Severity.CRITICAL),
    ],
)
def test_processor_uses_thresholds_of_partner_class(
    partner: str, site: str, on_hand: float, expected: Severity | None
) -> None:
    processor = LedgerProcessor(make_alliance())
    feed = Feed()
    out = processor.process(
        [feed(stock(partner, position(site, on_hand=on_hand, safety=0, daily=1)))], NOW
    )
    alerts = detected(out)
    if expected is None:
        assert alerts == []
        assert processor.state(0).shortages.open == {}
    else:
        assert [a.severity for a in alerts] == [expected]
        assert alerts[0].criticality is make_alliance().partner(partner).criticality
        assert alerts[0].causes == ["low_coverage"]


def test_processor_without_alliance_uses_default_normal_thresholds() -> None:
    processor = LedgerProcessor()
    defaults = ShortageRules().thresholds(Criticality.NORMAL)
    feed = Feed()
    # just under the default watch threshold
    on_hand = defaults.watch_days - 0.5
    out = processor.process(
        [feed(stock("anyone", position("s1", on_hand=on_hand, safety=0, daily=1)))], NOW
    )
    [alert] = detected(out)
    assert alert.severity is Severity.WATCH
    assert alert.criticality is Criticality.NORMAL
    assert out.transitions == {Transition.STARTED.value: 1}
