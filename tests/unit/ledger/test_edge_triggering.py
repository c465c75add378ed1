"""Alerts are edge-triggered: start, worsen and end are reported, repeats and easing are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.alerts import ShortageDetected, ShortageResolved
from schemas.common import Criticality, Severity, Unit
from services.ledger.processor import LedgerProcessor

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    TODAY,
    Feed,
    decode_alerts,
    detected,
    make_alliance,
    need,
    position,
    stock,
)


def run() -> tuple[LedgerProcessor, Feed]:
    return LedgerProcessor(make_alliance()), Feed()


def level(on_hand: float, minutes: float) -> dict:
    """A hospital position (watch 20 / critical 5 days, safety 10, 1 per day)."""
    return stock(HOSPITAL, position(on_hand=on_hand, safety=10, daily=1), minutes=minutes)


def test_start_emits_exactly_one_detected() -> None:
    processor, feed = run()
    event = level(8, 0)  # below safety stock (10), coverage 8 days -> shortage
    out = processor.process([feed(event)], NOW)
    [alert] = decode_alerts(out)
    assert isinstance(alert, ShortageDetected)
    assert (alert.partner_id, alert.site_id, alert.material_id) == (
        HOSPITAL,
        "lager-1",
        "NACL-500ML",
    )
    assert alert.severity is Severity.SHORTAGE
    assert alert.previous_severity is None
    assert set(alert.causes) == {"below_safety_stock", "low_coverage"}
    assert alert.criticality is Criticality.HOSPITAL
    assert alert.unit is Unit.PIECES
    assert (alert.on_hand, alert.safety_stock, alert.coverage_days) == (8, 10, 8)
    assert alert.need_quantity == 0
    assert alert.source_event_id == event["event_id"]
    assert alert.detected_at == datetime.fromtimestamp(NOW, UTC)
    assert out.transitions == {"started": 1}
    assert processor.state(0).shortages.open == {
        (HOSPITAL, "lager-1", "NACL-500ML"): Severity.SHORTAGE
    }


def test_healthy_position_emits_nothing() -> None:
    processor, feed = run()
    out = processor.process([feed(level(500, 0))], NOW)
    assert out.alerts == []
    assert out.transitions == {}
    assert out.changelog  # but the state was recorded


def test_repeat_of_same_state_emits_nothing() -> None:
    processor, feed = run()
    processor.process([feed(level(8, 0))], NOW)
    out = processor.process([feed(level(8, 1))], NOW)
    assert out.alerts == []
    # a different value in the same severity band is no edge either
    out = processor.process([feed(level(7, 2))], NOW)
    assert out.alerts == []
    assert out.transitions == {}


def test_repeat_in_same_batch_emits_once() -> None:
    processor, feed = run()
    out = processor.process(feed.batch(level(8, 0), level(8, 1), level(7, 2)), NOW)
    assert len(decode_alerts(out)) == 1


def test_worsening_emits_detected_with_previous_severity() -> None:
    processor, feed = run()
    processor.process([feed(level(15, 0))], NOW)  # 15 days < watch 20 -> watch
    event = level(8, 1)  # below safety -> shortage
    out = processor.process([feed(event)], NOW)
    [alert] = decode_alerts(out)
    assert isinstance(alert, ShortageDetected)
    assert (alert.severity, alert.previous_severity) == (Severity.SHORTAGE, Severity.WATCH)
    assert alert.source_event_id == event["event_id"]
    out = processor.process([feed(level(3, 2))], NOW)  # 3 days < critical 5
    [alert] = detected(out)
    assert (alert.severity, alert.previous_severity) == (Severity.CRITICAL, Severity.SHORTAGE)
    assert out.transitions == {"worsened": 1}


def test_easing_emits_nothing_but_later_worsening_is_reported() -> None:
    processor, feed = run()
    processor.process([feed(level(3, 0))], NOW)  # critical
    out = processor.process([feed(level(15, 1))], NOW)  # eased to watch
    assert out.alerts == []
    assert out.transitions == {"eased": 1}
    key = (HOSPITAL, "lager-1", "NACL-500ML")
    assert processor.state(0).shortages.open[key] is Severity.WATCH
    out = processor.process([feed(level(3, 2))], NOW)  # critical again
    [alert] = decode_alerts(out)
    assert isinstance(alert, ShortageDetected)
    assert (alert.severity, alert.previous_severity) == (Severity.CRITICAL, Severity.WATCH)


def test_ending_emits_resolved() -> None:
    processor, feed = run()
    processor.process([feed(level(3, 0))], NOW)
    event = level(500, 1)
    out = processor.process([feed(event)], NOW)
    [alert] = decode_alerts(out)
    assert isinstance(alert, ShortageResolved)
    assert alert.previous_severity is Severity.CRITICAL
    assert (alert.partner_id, alert.site_id, alert.material_id) == (
        HOSPITAL,
        "lager-1",
        "NACL-500ML",
    )
    assert alert.source_event_id == event["event_id"]
    assert processor.state(0).shortages.open == {}
    assert out.transitions == {"resolved": 1}
    # and staying healthy emits nothing more
    assert processor.process([feed(level(400, 2))], NOW).alerts == []


def test_start_and_end_in_one_batch() -> None:
    processor, feed = run()
    out = processor.process(feed.batch(level(3, 0), level(500, 1)), NOW)
    # the batch is assessed once at its end: the net state is healthy
    assert out.alerts == []
    assert processor.state(0).shortages.open == {}


def test_keys_are_independent() -> None:
    processor, feed = run()
    event = stock(
        HOSPITAL,
        position("lager-1", "NACL-500ML", on_hand=3, safety=10, daily=1),
        position("lager-2", "NACL-500ML", on_hand=500, safety=10, daily=1),
        position("lager-1", "GLOVES-M", on_hand=8, safety=10, daily=0),
    )
    out = processor.process([feed(event)], NOW)
    got = {(a.site_id, a.material_id): a.severity for a in detected(out)}
    assert got == {
        ("lager-1", "NACL-500ML"): Severity.CRITICAL,
        ("lager-1", "GLOVES-M"): Severity.SHORTAGE,
    }
    assert sorted(k for k, _ in out.alerts) == [b"GLOVES-M", b"NACL-500ML"]


def test_need_starts_worsens_and_withdrawal_resolves() -> None:
    processor, feed = run()
    processor.process([feed(level(500, 0))], NOW)  # healthy position
    first = need(HOSPITAL, quantity=40, due=TODAY + timedelta(days=30), minutes=1)
    out = processor.process([feed(first)], NOW)
    [alert] = detected(out)
    assert (alert.severity, alert.causes, alert.need_quantity) == (
        Severity.SHORTAGE,
        ["need_reported"],
        40,
    )
    assert alert.source_event_id == first["event_id"]
    # same need, due tomorrow now -> critical (hospital critical_days 5)
    soon = need(HOSPITAL, quantity=40, due=TODAY + timedelta(days=1), minutes=2)
    out = processor.process([feed(soon)], NOW)
    [alert] = detected(out)
    assert (alert.severity, alert.previous_severity) == (Severity.CRITICAL, Severity.SHORTAGE)
    assert alert.source_event_id == soon["event_id"]
    withdrawal = need(HOSPITAL, quantity=0, minutes=3)
    out = processor.process([feed(withdrawal)], NOW)
    [alert] = decode_alerts(out)
    assert isinstance(alert, ShortageResolved)
    assert alert.previous_severity is Severity.CRITICAL
    assert alert.source_event_id == withdrawal["event_id"]


def test_need_without_position_uses_need_unit() -> None:
    processor, feed = run()
    out = processor.process(
        [
            feed(
                need(
                    FACTORY,
                    site="halle-1",
                    material="STEEL-S235",
                    unit="t",
                    quantity=3,
                    criticality="normal",
                )
            )
        ],
        NOW,
    )
    [alert] = detected(out)
    assert alert.unit is Unit.TONNE
    assert alert.on_hand == 0
    assert alert.coverage_days is None
    assert alert.need_quantity == 3


def test_needs_of_one_key_add_up_and_earliest_due_counts() -> None:
    processor, feed = run()
    processor.process(
        feed.batch(
            need(HOSPITAL, "n-a", quantity=10, due=TODAY + timedelta(days=30)),
            need(HOSPITAL, "n-b", quantity=5, due=TODAY + timedelta(days=2)),
        ),
        NOW,
    )
    key = (HOSPITAL, "lager-1", "NACL-500ML")
    state = processor.state(0)
    assert state.need_totals[key] == 15
    assert state.shortages.open[key] is Severity.CRITICAL  # n-b is due within 5 days
    # withdrawing the urgent one eases to shortage: no alert
    out = processor.process([feed(need(HOSPITAL, "n-b", quantity=0, minutes=1))], NOW)
    assert out.alerts == []
    assert state.need_totals[key] == 10
    assert state.shortages.open[key] is Severity.SHORTAGE


def test_need_moving_site_resolves_the_old_key() -> None:
    processor, feed = run()
    processor.process([feed(need(HOSPITAL, "n-1", site="lager-1", quantity=5))], NOW)
    out = processor.process(
        [feed(need(HOSPITAL, "n-1", site="lager-2", quantity=5, minutes=1))], NOW
    )
    assert sorted((a.site_id, a.type) for a in decode_alerts(out)) == [
        ("lager-1", "ShortageResolved"),
        ("lager-2", "ShortageDetected"),
    ]
    assert set(processor.state(0).shortages.open) == {(HOSPITAL, "lager-2", "NACL-500ML")}


def test_alert_ids_are_unique_across_episodes() -> None:
    """Start, end, start again of the same shortage are three distinct alerts."""
    processor, feed = run()
    processor.process([feed(level(500, 0))], NOW)
    ids = []
    for minute, quantity in enumerate([10, 0, 10, 0, 10], start=1):
        out = processor.process([feed(need(HOSPITAL, quantity=quantity, minutes=minute))], NOW)
        ids += [a.alert_id for a in decode_alerts(out)]
    assert len(ids) == 5
    assert len(set(ids)) == 5, ids


def test_alert_ids_are_unique_for_position_episodes() -> None:
    processor, feed = run()
    ids = []
    for minute, on_hand in enumerate([3, 500, 3, 500]):
        out = processor.process([feed(level(on_hand, minute))], NOW)
        ids += [a.alert_id for a in decode_alerts(out)]
    assert len(ids) == 4
    assert len(set(ids)) == 4
