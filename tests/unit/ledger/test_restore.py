"""A ledger rebuilt from its changelog is the ledger it was, and behaves the same afterwards."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import orjson

from services.ledger.processor import Inbound, LedgerProcessor, Outcome

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    TODAY,
    UTILITY,
    Feed,
    balances,
    capacity_need,
    demand,
    make_alliance,
    need,
    offer,
    position,
    snapshot,
    stock,
)

# Partners are spread over two partitions, as Kafka would by key.
PARTITION = {HOSPITAL: 0, FACTORY: 1, UTILITY: 1}


class Script:
    """Feeds events to their partner's partition."""

    def __init__(self) -> None:
        self.feed = Feed()

    def __call__(self, *events: dict) -> list[Inbound]:
        return [self.feed(e, partition=PARTITION[e["partner_id"]]) for e in events]


def history(script: Script) -> tuple[list[list[Inbound]], dict]:
    """A varied history: shortages opening, worsening, easing and ending, needs and offers
    added, moved and withdrawn, unit changes, duplicates, stale events and bad input."""
    first = stock(
        HOSPITAL,
        position("lager-1", "NACL-500ML", on_hand=3, safety=10, daily=1),
        position("lager-2", "NACL-500ML", on_hand=300, safety=10, daily=1),
        position("lager-1", "GLOVES-M", on_hand=15, safety=5, daily=1),
        minutes=0,
    )
    old_need = need(HOSPITAL, "n-old", material="MASK-FFP2", quantity=20, minutes=1)
    batches = [
        script(
            first,
            stock(
                FACTORY,
                position("halle-1", "STEEL-S235", on_hand=40, safety=10, daily=2, unit="t"),
                minutes=0,
            ),
            stock(
                UTILITY,
                position("netz-1", "DIESEL", on_hand=900, safety=100, daily=50, unit="l"),
                minutes=0,
            ),
            old_need,
            offer(FACTORY, "cap-1", hours=40, minutes=0),
            capacity_need(HOSPITAL, "steri-1", hours=12, minutes=0),
            capacity_need(HOSPITAL, "steri-2", hours=4, minutes=0),
            demand(HOSPITAL, "MASK-FFP2", quantity=500, minutes=0),
            demand(UTILITY, "DIESEL", quantity=2000, minutes=0),
        ),
        script(
            first,  # duplicate
            stock(
                HOSPITAL,
                position("lager-1", "NACL-500ML", on_hand=1, safety=10, daily=1),
                minutes=-5,
            ),  # stale
            need(
                HOSPITAL,
                "n-1",
                site="lager-2",
                quantity=50,
                due=TODAY + timedelta(days=1),
                minutes=2,
            ),
            need(
                FACTORY,
                "n-9",
                site="halle-1",
                material="BOLT-M8",
                quantity=1000,
                criticality="normal",
                minutes=2,
            ),
            stock(
                UTILITY,
                position("netz-1", "DIESEL", on_hand=400, safety=100, daily=50, unit="l"),
                minutes=3,
            ),  # 8 days: watch
            offer(UTILITY, "cap-2", site="netz-1", hours=10, minutes=3),
        ),
        script(
            need(HOSPITAL, "n-old", quantity=0, minutes=4),  # withdrawn
            need(HOSPITAL, "n-1", site="lager-1", quantity=30, minutes=4),  # moved site
            offer(FACTORY, "cap-1", hours=0, minutes=4),  # withdrawn
            capacity_need(HOSPITAL, "steri-1", hours=0, minutes=4),  # withdrawn
            capacity_need(HOSPITAL, "steri-2", hours=9, minutes=4),  # changed
            demand(HOSPITAL, "MASK-FFP2", quantity=0, minutes=4),  # withdrawn
            demand(UTILITY, "DIESEL", quantity=2500, minutes=4),  # changed
            stock(
                FACTORY,
                position(
                    "halle-1", "STEEL-S235", on_hand=40000, safety=10000, daily=2000, unit="kg"
                ),
                minutes=5,
            ),  # unit change
            stock(
                HOSPITAL, position("lager-1", "GLOVES-M", on_hand=4, safety=5, daily=1), minutes=5
            ),
        ),
    ]
    # a bad message in between changes nothing
    batches[1].insert(1, script.feed.raw(b"{not json", HOSPITAL.encode(), partition=0))
    later = {
        "replay": first,
        "revive_need": need(HOSPITAL, "n-old", material="MASK-FFP2", quantity=5, minutes=3),
        "revive_offer": offer(FACTORY, "cap-1", hours=5, minutes=3),
        "revive_capacity_need": capacity_need(HOSPITAL, "steri-1", hours=3, minutes=3),
        "revive_demand": demand(HOSPITAL, "MASK-FFP2", quantity=7, minutes=3),
    }
    return batches, later


def run_history() -> tuple[LedgerProcessor, dict[int, list[bytes]], Script, dict]:
    script = Script()
    batches, later = history(script)
    processor = LedgerProcessor(make_alliance())
    changelog: dict[int, list[bytes]] = defaultdict(list)
    for index, batch in enumerate(batches):
        out = processor.process(batch, NOW + index)
        for partition, chunks in out.changelog.items():
            changelog[partition].extend(chunks)
    return processor, changelog, script, later


def restored_from(changelog: dict[int, list[bytes]]) -> LedgerProcessor:
    fresh = LedgerProcessor(make_alliance())
    for partition, records in changelog.items():
        assert fresh.restore_partition(partition, records, NOW + 2) == len(records)
    return fresh


def comparable(out: Outcome) -> tuple:
    return (
        sorted(out.alerts),
        out.changelog,
        sorted(out.dead_letters),
        out.ingested,
        out.rejected,
        out.ignored,
        out.transitions,
    )


def test_history_is_not_trivial() -> None:
    original, changelog, _, _ = run_history()
    assert set(changelog) == {0, 1}
    assert len(original.state(0).positions) == 3
    assert original.state(0).shortages.open
    assert original.state(1).shortages.open
    assert original.state(0).withdrawn_needs
    assert original.state(1).offers.withdrawn
    assert original.state(1).offers.current
    assert original.state(0).capacity_needs.withdrawn
    assert original.state(0).capacity_needs.current[(HOSPITAL, "steri-2")].hours == 9
    assert original.state(0).purchase_demands.withdrawn
    assert original.state(1).purchase_demands.current[(UTILITY, "DIESEL")].quantity == 2500


def test_restored_state_equals_original() -> None:
    original, changelog, _, _ = run_history()
    restored = restored_from(changelog)
    assert sorted(restored.states) == sorted(original.states) == [0, 1]
    for partition in (0, 1):
        assert snapshot(restored.state(partition)) == snapshot(original.state(partition))


def test_restored_dedup_knows_every_applied_event() -> None:
    original, changelog, _, _ = run_history()
    restored = restored_from(changelog)
    for partition, records in changelog.items():
        ids = [i for raw in records for i in orjson.loads(raw)["ids"]]
        assert ids
        assert all(i in restored.state(partition).dedup for i in ids)
        assert all(i in original.state(partition).dedup for i in ids)


def test_replayed_old_event_is_duplicate_after_restore() -> None:
    _, changelog, script, later = run_history()
    restored = restored_from(changelog)
    before = snapshot(restored.state(0))
    out = restored.process(script(later["replay"]), NOW + 3)
    assert out.ignored == {"duplicate": 1}
    assert out.changelog == {} and out.alerts == []
    assert snapshot(restored.state(0)) == before


def test_withdrawals_survive_restore() -> None:
    """Older events cannot revive a withdrawn need or offer after a restart either."""
    _, changelog, script, later = run_history()
    restored = restored_from(changelog)
    restored.process(
        script(
            later["revive_need"],
            later["revive_offer"],
            later["revive_capacity_need"],
            later["revive_demand"],
        ),
        NOW + 3,
    )
    assert (HOSPITAL, "n-old") not in restored.state(0).needs
    assert (FACTORY, "cap-1") not in restored.state(1).offers.current
    assert (HOSPITAL, "steri-1") not in restored.state(0).capacity_needs.current
    assert (HOSPITAL, "MASK-FFP2") not in restored.state(0).purchase_demands.current


def test_balances_equal_after_restore() -> None:
    original, changelog, _, _ = run_history()
    restored = restored_from(changelog)
    assert balances(restored) == {}  # restore does not re-announce every material
    for partition in (0, 1):
        assert restored.state(partition).balances.all() == original.state(partition).balances.all()


def test_new_events_after_restore_give_same_outcome() -> None:
    original, changelog, script, _ = run_history()
    restored = restored_from(changelog)
    original.balance_reports(NOW)  # take what was pending before the "restart"
    follow_up = [
        script(
            stock(
                HOSPITAL,
                position("lager-1", "NACL-500ML", on_hand=500, safety=10, daily=1),
                minutes=10,
            ),  # resolves
            stock(
                HOSPITAL,
                position("lager-2", "NACL-500ML", on_hand=2, safety=10, daily=1),
                minutes=10,
            ),  # starts critical
            need(HOSPITAL, "n-1", quantity=0, minutes=10),
            stock(
                UTILITY,
                position("netz-1", "DIESEL", on_hand=10, safety=100, daily=50, unit="l"),
                minutes=10,
            ),  # worsens
            stock(
                FACTORY,
                position("halle-1", "STEEL-S235", on_hand=1, safety=10000, daily=2000, unit="kg"),
                minutes=1,
            ),  # stale
        ),
        script(
            stock(
                HOSPITAL,
                position("lager-2", "NACL-500ML", on_hand=2, safety=10, daily=1),
                minutes=11,
            ),  # repeat, no alert
            need(
                FACTORY,
                "n-9",
                site="halle-1",
                material="BOLT-M8",
                quantity=0,
                criticality="normal",
                minutes=11,
            ),
        ),
    ]
    total_alerts = 0
    for index, batch in enumerate(follow_up):
        now = NOW + 100 + index
        expected = original.process(batch, now)
        got = restored.process(batch, now)
        assert comparable(got) == comparable(expected)
        total_alerts += len(expected.alerts)
        assert balances(restored, now) == balances(original, now)
    assert total_alerts >= 4
    for partition in (0, 1):
        assert snapshot(restored.state(partition)) == snapshot(original.state(partition))


def test_restore_of_a_prefix_equals_state_at_that_point() -> None:
    script = Script()
    batches, _ = history(script)
    original = LedgerProcessor(make_alliance())
    records: list[bytes] = []
    for index, batch in enumerate(batches):
        out = original.process(batch, NOW + 2)
        records.extend(out.changelog[0])
        fresh = LedgerProcessor(make_alliance())
        fresh.restore_partition(0, list(records), NOW + 2)
        assert snapshot(fresh.state(0)) == snapshot(original.state(0)), index


def test_restore_respects_dedup_window_capacity() -> None:
    feed = Feed()
    original = LedgerProcessor(dedup_capacity=3)
    events = [stock("p-one", position("s1", on_hand=i), minutes=i) for i in range(6)]
    logs = [chunk for e in events for chunk in original.process([feed(e)], NOW).changelog[0]]
    restored = LedgerProcessor(dedup_capacity=3)
    restored.restore_partition(0, logs, NOW)
    def seen(processor: LedgerProcessor, event: dict) -> bool:
        return processor.state(0).has_event(event["partner_id"], event["event_id"])

    for event in events:
        assert seen(restored, event) is seen(original, event)
    assert [seen(restored, e) for e in events] == [False] * 3 + [True] * 3


def test_restore_replaces_partition_state_and_drop_forgets_it() -> None:
    original, _, _, _ = run_history()
    original.restore_partition(0, [], NOW)
    assert original.state(0).positions == {}
    assert original.has(1)
    original.drop_partition(1)
    assert not original.has(1)


def test_large_batches_are_split_and_ids_come_last() -> None:
    from services.ledger.changelog import CHANGELOG_ROWS, position_rows

    feed = Feed()
    count = CHANGELOG_ROWS * 2 + 7
    positions = [position(material=f"M{i:05d}", on_hand=100 + i) for i in range(count)]
    event = stock(HOSPITAL, *positions)
    original = LedgerProcessor()
    out = original.process([feed(event)], NOW)
    chunks = out.changelog[0]
    assert len(chunks) == 3
    decoded = [orjson.loads(c) for c in chunks]
    assert [len(position_rows(d)) for d in decoded] == [CHANGELOG_ROWS, CHANGELOG_ROWS, 7]
    assert ["ids" in d for d in decoded] == [False, False, True]
    restored = LedgerProcessor()
    restored.restore_partition(0, chunks, NOW)
    assert snapshot(restored.state(0)) == snapshot(original.state(0))
    # only the first two chunks written: positions are there, the event is not marked seen
    partial = LedgerProcessor()
    partial.restore_partition(0, chunks[:2], NOW)
    assert not partial.state(0).has_event(event["partner_id"], event["event_id"])
