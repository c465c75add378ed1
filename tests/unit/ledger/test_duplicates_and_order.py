"""Duplicate event ids change nothing; older events never overwrite newer state."""

from __future__ import annotations

import copy
from datetime import timedelta

import orjson

from services.ledger.changelog import position_rows
from services.ledger.dedup import event_key
from services.ledger.processor import LedgerProcessor

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    TODAY,
    Feed,
    make_alliance,
    need,
    offer,
    position,
    snapshot,
    stock,
)

# -- duplicates --------------------------------------------------------------------------------


def test_duplicate_in_later_batch_changes_nothing() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    event = stock(HOSPITAL, position(on_hand=3, safety=10, daily=1))  # critical shortage
    first = processor.process([feed(event)], NOW)
    assert first.alerts and first.changelog
    before = snapshot(processor.state(0))
    # same event id, even with different content, is ignored
    changed = copy.deepcopy(event)
    changed["positions"][0]["on_hand"] = 999
    for dup in (event, changed):
        out = processor.process([feed(dup)], NOW + 60)
        assert out.ignored == {"duplicate": 1}
        assert out.changelog == {}
        assert out.alerts == []
        assert out.positions == 0
        assert snapshot(processor.state(0)) == before


def test_duplicate_within_one_batch() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    event = stock(HOSPITAL, position(on_hand=3, safety=10, daily=1))
    out = processor.process(feed.batch(event, event, event), NOW)
    assert out.ignored == {"duplicate": 2}
    assert out.ingested == {"StockReported": 3}  # valid, then recognised as duplicates
    assert len(out.alerts) == 1
    record = orjson.loads(out.changelog[0][0])
    assert record["ids"] == [event_key(HOSPITAL, event["event_id"])]
    assert len(position_rows(record)) == 1


def test_duplicate_need_and_offer() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    n, o = need(HOSPITAL, quantity=5), offer(FACTORY, hours=8)
    processor.process(feed.batch(n, o), NOW)
    before = snapshot(processor.state(0))
    withdrawn_n = dict(n, quantity=0)
    withdrawn_o = dict(o, hours=0)
    out = processor.process(feed.batch(n, o, withdrawn_n, withdrawn_o), NOW)
    assert out.ignored == {"duplicate": 4}
    assert out.changelog == {} and out.alerts == []
    assert snapshot(processor.state(0)) == before


def test_duplicates_are_per_partition_state() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    event = stock(HOSPITAL)
    processor.process([feed(event)], NOW)
    out = processor.process([feed(event, partition=1)], NOW)
    assert out.ignored == {}
    assert 1 in out.changelog


# -- out of order: positions -------------------------------------------------------------------


def test_older_stock_does_not_overwrite_newer_position() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    newer = stock(HOSPITAL, position(on_hand=500), minutes=10)
    older = stock(HOSPITAL, position(on_hand=3), minutes=5)
    processor.process([feed(newer)], NOW)
    out = processor.process([feed(older)], NOW)
    assert out.ignored == {"out_of_order": 1}
    record = processor.state(0).positions[(HOSPITAL, "lager-1", "NACL-500ML")]
    assert (record.on_hand, record.event_id) == (500, newer["event_id"])
    assert out.alerts == []
    # the stale event is still remembered (a resend is a duplicate) but has no position rows
    log = orjson.loads(out.changelog[0][0])
    assert log["ids"] == [event_key(older["partner_id"], older["event_id"])]
    assert "pos" not in log
    again = processor.process([feed(older)], NOW)
    assert again.ignored == {"duplicate": 1}


def test_out_of_order_is_per_position() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process([feed(stock(HOSPITAL, position("lager-1", on_hand=500), minutes=10))], NOW)
    mixed = stock(
        HOSPITAL,
        position("lager-1", on_hand=1),  # older than stored: skipped
        position("lager-2", on_hand=7),  # new key: applied
        minutes=5,
    )
    out = processor.process([feed(mixed)], NOW)
    assert out.ignored == {"out_of_order": 1}
    positions = processor.state(0).positions
    assert positions[(HOSPITAL, "lager-1", "NACL-500ML")].on_hand == 500
    assert positions[(HOSPITAL, "lager-2", "NACL-500ML")].on_hand == 7
    rows = position_rows(orjson.loads(out.changelog[0][0]))
    assert [row[1] for row in rows] == ["lager-2"]


def test_out_of_order_within_one_batch() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    out = processor.process(
        feed.batch(
            stock(HOSPITAL, position(on_hand=500), minutes=10),
            stock(HOSPITAL, position(on_hand=3), minutes=5),
        ),
        NOW,
    )
    assert out.ignored == {"out_of_order": 1}
    assert processor.state(0).positions[(HOSPITAL, "lager-1", "NACL-500ML")].on_hand == 500
    assert out.alerts == []


def test_newer_stock_does_overwrite() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process([feed(stock(HOSPITAL, position(on_hand=500), minutes=5))], NOW)
    out = processor.process([feed(stock(HOSPITAL, position(on_hand=3), minutes=10))], NOW)
    assert out.ignored == {}
    assert processor.state(0).positions[(HOSPITAL, "lager-1", "NACL-500ML")].on_hand == 3
    assert len(out.alerts) == 1


def test_last_seen_keeps_newest_time() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    newer, older = stock(HOSPITAL, minutes=10), stock(HOSPITAL, minutes=5)
    processor.process(feed.batch(newer, older), NOW)
    assert processor.state(0).last_seen[HOSPITAL] == NOW + 600


# -- out of order: needs and offers ------------------------------------------------------------


def test_older_need_does_not_overwrite_newer_need() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    newer = need(HOSPITAL, quantity=5, minutes=10)
    older = need(HOSPITAL, quantity=80, due=TODAY + timedelta(days=1), minutes=5)
    processor.process([feed(newer)], NOW)
    out = processor.process([feed(older)], NOW)
    state = processor.state(0)
    record = state.needs[(HOSPITAL, "need-1")]
    assert (record.quantity, record.event_id) == (5, newer["event_id"])
    assert state.need_totals[(HOSPITAL, "lager-1", "NACL-500ML")] == 5
    assert out.alerts == []
    assert "need" not in orjson.loads(out.changelog[0][0])


def test_older_need_does_not_revive_a_withdrawn_need() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process([feed(need(HOSPITAL, quantity=5, minutes=0))], NOW)
    processor.process([feed(need(HOSPITAL, quantity=0, minutes=10))], NOW)
    assert processor.state(0).needs == {}
    late = need(HOSPITAL, quantity=80, minutes=5)  # sent before the withdrawal
    out = processor.process([feed(late)], NOW)
    state = processor.state(0)
    assert state.needs == {}
    assert state.need_totals == {}
    assert state.shortages.open == {}
    assert out.alerts == []


def test_older_offer_does_not_overwrite_newer_offer() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    newer = offer(FACTORY, hours=8, minutes=10)
    processor.process([feed(newer)], NOW)
    processor.process([feed(offer(FACTORY, hours=99, minutes=5))], NOW)
    record = processor.state(0).offers.current[(FACTORY, "offer-1")]
    assert (record.hours, record.event_id) == (8, newer["event_id"])


def test_older_offer_does_not_revive_a_withdrawn_offer() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process([feed(offer(FACTORY, hours=8, minutes=0))], NOW)
    processor.process([feed(offer(FACTORY, hours=0, minutes=10))], NOW)
    assert processor.state(0).offers.current == {}
    processor.process([feed(offer(FACTORY, hours=99, minutes=5))], NOW)
    assert processor.state(0).offers.current == {}


def test_two_partners_may_use_the_same_event_id() -> None:
    """Partners choose their ids (an ERP export counter, say): the same id from another
    partner on the same partition is not a duplicate."""
    processor = LedgerProcessor(make_alliance())
    feed = Feed()
    ours = stock(HOSPITAL, position(on_hand=500), event_id="export-0001")
    theirs = stock(FACTORY, position("halle-1", on_hand=0, safety=10), event_id="export-0001")
    out = processor.process(feed.batch(ours, theirs), NOW)
    assert out.ignored == {} and out.dead_letters == []
    state = processor.state(0)
    assert {partner for partner, _, _ in state.positions} == {HOSPITAL, FACTORY}
    assert state.has_event(HOSPITAL, "export-0001") and state.has_event(FACTORY, "export-0001")
    # a resend by either is still a duplicate
    again = processor.process(feed.batch(theirs), NOW)
    assert again.ignored == {"duplicate": 1}
