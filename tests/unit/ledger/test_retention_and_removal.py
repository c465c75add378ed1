"""Retention sweep and partner removal: live state and replayed changelog agree."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas.coordination import PartnerRemoved
from services.ledger.processor import LedgerProcessor, Outcome

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    Feed,
    balances,
    capacity_need,
    demand,
    make_alliance,
    need,
    new_id,
    offer,
    position,
    resolved,
    snapshot,
    stock,
)

DAY = 86_400.0


def removal(partner: str = HOSPITAL, command: str = "cmd-0000000000a1") -> dict:
    return PartnerRemoved(
        command_id=command,
        partner_id=partner,
        requested_by="ops-olga",
        reason="left the alliance",
        at=datetime.fromtimestamp(NOW + 60, UTC),
    ).model_dump(mode="json")


def replay(outcomes: list[Outcome], partition: int = 0) -> LedgerProcessor:
    records = [r for out in outcomes for r in out.changelog.get(partition, [])]
    restored = LedgerProcessor(make_alliance())
    restored.restore_partition(partition, records, NOW)
    return restored


def test_removed_partner_is_gone_and_stays_gone_after_replay() -> None:
    feed = Feed()
    ledger = LedgerProcessor(make_alliance())
    outs = [
        ledger.process(
            feed.batch(
                stock(HOSPITAL, position(on_hand=1, safety=10)),  # a critical shortage
                stock(FACTORY, position(site="halle-1", on_hand=500, safety=10)),
                need(HOSPITAL, quantity=30),
                offer(FACTORY),
                capacity_need(HOSPITAL),
                demand(HOSPITAL),
            ),
            NOW,
        )
    ]
    assert ledger.state(0).capacity_needs.current and ledger.state(0).purchase_demands.current
    state = ledger.state(0)
    assert any(k[0] == HOSPITAL for k in state.shortages.open)
    out = ledger.process(feed.batch(removal()), NOW + 60)
    outs.append(out)
    assert out.removed_partners == [HOSPITAL]
    assert not any(k[0] == HOSPITAL for k in state.positions)
    assert not any(k[0] == HOSPITAL for k in state.needs)
    assert HOSPITAL not in state.last_seen
    assert not state.capacity_needs.current and not state.purchase_demands.current
    assert not any(k[0] == HOSPITAL for k in state.shortages.open)
    assert [a.partner_id for a in resolved(out)] == [HOSPITAL]
    assert {k for k in state.positions} == {(FACTORY, "halle-1", "NACL-500ML")}
    # the need is gone from the material balance too
    assert balances(ledger)[("NACL-500ML", "pcs")].total_need == 0
    record = orjson.loads(out.changelog[0][-1])
    assert record["rm"] == [[HOSPITAL, NOW + 60]]
    # later events of the removed partner are ignored (no dead letter keeps their data)
    late = ledger.process(feed.batch(stock(HOSPITAL, position(on_hand=5), minutes=5)), NOW + 90)
    outs.append(late)
    assert late.ignored["partner_removed"] == 1 and not late.dead_letters
    assert not any(k[0] == HOSPITAL for k in state.positions)
    # a restart replays the changelog into the same state: the partner does not come back
    restored = replay(outs)
    assert snapshot(restored.state(0)) == snapshot(state)
    assert HOSPITAL in restored.state(0).removed
    # the removal command is idempotent (re-delivery after a crash)
    again = ledger.process(feed.batch(removal()), NOW + 120)
    assert again.removed_partners == [] and not again.changelog


def test_removal_in_the_same_batch_as_the_partners_events() -> None:
    feed = Feed()
    ledger = LedgerProcessor(make_alliance())
    out = ledger.process(
        feed.batch(
            stock(HOSPITAL, position()),
            need(HOSPITAL),
            removal(),
            stock(FACTORY, position(site="halle-1")),
        ),
        NOW,
    )
    state = ledger.state(0)
    assert {k[0] for k in state.positions} == {FACTORY}
    assert snapshot(replay([out]).state(0)) == snapshot(state)


def test_retention_sweep_drops_stale_positions_only() -> None:
    feed = Feed()
    ledger = LedgerProcessor(make_alliance())
    outs = [
        ledger.process(
            feed.batch(stock(HOSPITAL, position(material="OLD", on_hand=1, safety=10))), NOW
        ),
        ledger.process(
            feed.batch(stock(HOSPITAL, position(material="FRESH"), minutes=60 * 24 * 9)),
            NOW + 9 * DAY,  # reported 9 days later
        ),
    ]
    state = ledger.state(0)
    assert "OLD" in {k[2] for k in state.shortages.open}
    # 10 days later with a 7-day window: OLD (10 days) goes, FRESH (1 day) stays
    out = ledger.sweep(NOW + 10 * DAY, 7 * DAY)
    outs.append(out)
    assert out.expired_positions == 1
    assert {k[2] for k in state.positions} == {"FRESH"}
    assert [a.material_id for a in resolved(out)] == ["OLD"]
    assert orjson.loads(out.changelog[0][0])["drop"] == [[HOSPITAL, "lager-1", "OLD"]]
    assert snapshot(replay(outs).state(0)) == snapshot(state)
    # nothing more to drop: no changelog record
    assert not ledger.sweep(NOW + 10 * DAY, 7 * DAY).changelog


def test_retention_sweep_with_nothing_stale_writes_nothing() -> None:
    feed = Feed()
    ledger = LedgerProcessor(make_alliance())
    ledger.process(feed.batch(stock(HOSPITAL)), NOW)
    out = ledger.sweep(NOW + DAY, 7 * DAY)
    assert out.expired_positions == 0 and not out.changelog and not out.alerts


def test_the_word_partnerremoved_in_free_text_is_not_a_removal() -> None:
    """Only a record whose type is PartnerRemoved removes; an answer that mentions it is an
    answer (the byte test is a filter, the parsed type decides)."""
    feed = Feed()
    ledger = LedgerProcessor(make_alliance())
    answer = {
        "type": "OrderAcknowledged",
        "event_id": new_id(),
        "partner_id": HOSPITAL,
        "occurred_at": datetime.fromtimestamp(NOW, UTC).isoformat(),
        "order_id": "run-0123456789ab.r1.t-1",
        "accepted": False,
        "reason": 'we saw "PartnerRemoved" in the news',
    }
    out = ledger.process(feed.batch(answer), NOW)
    assert not out.dead_letters and out.removed_partners == []
    assert [a.reason for a in out.acknowledgements] == [answer["reason"]]
