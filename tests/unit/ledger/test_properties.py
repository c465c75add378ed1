"""Property tests: whatever the order, duplicates and timestamps, latest occurred_at wins,
and the changelog rebuilds exactly the same state."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.processor import Inbound, LedgerProcessor

from .helpers import BASE, NOW, TODAY, snapshot

PARTNERS = ["p-alpha", "p-beta"]
SITES = ["s1", "s2"]
MATERIALS = ["M-1", "M-2", "M-3"]
UNITS = ["pcs", "kg"]

quantity = st.integers(min_value=0, max_value=50).map(float)

position_st = st.fixed_dictionaries(
    {
        "site_id": st.sampled_from(SITES),
        "material_id": st.sampled_from(MATERIALS),
        "unit": st.sampled_from(UNITS),
        "on_hand": quantity,
        "safety_stock": quantity,
        "daily_consumption": st.integers(min_value=0, max_value=5).map(float),
    }
)


@st.composite
def stock_event(draw: st.DrawFn, index: int) -> dict:
    positions = draw(
        st.lists(
            position_st,
            min_size=1,
            max_size=4,
            unique_by=lambda p: (p["site_id"], p["material_id"]),
        )
    )
    return {
        "type": "StockReported",
        "event_id": f"ev-prop-{index:04d}",
        "partner_id": draw(st.sampled_from(PARTNERS)),
        # few distinct minutes, so equal timestamps happen too
        "occurred_at": (BASE + timedelta(minutes=draw(st.integers(0, 6)))).isoformat(),
        "positions": positions,
    }


@st.composite
def deliveries(draw: st.DrawFn, event: st.SearchStrategy) -> tuple[list[dict], list[list[int]]]:
    """Distinct events, delivered in a random order with duplicates, cut into batches."""
    count = draw(st.integers(1, 12))
    events = [draw(event(i)) for i in range(count)]
    order = draw(st.permutations(range(count)))
    order = list(order) + draw(st.lists(st.integers(0, count - 1), max_size=6))
    order = draw(st.permutations(order))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=4)))
    batches, start = [], 0
    for cut in [*cuts, len(order)]:
        batches.append(list(order[start:cut]))
        start = cut
    return events, batches


def to_inbound(event: dict, offset: int) -> Inbound:
    return Inbound("partner-events", 0, offset, event["partner_id"].encode(), orjson.dumps(event))


def run(events: list[dict], batches: list[list[int]]) -> tuple[LedgerProcessor, list[bytes], dict]:
    processor = LedgerProcessor()
    changelog: list[bytes] = []
    counts: dict = defaultdict(int)
    offset = 0
    for batch in batches:
        records = []
        for index in batch:
            records.append(to_inbound(events[index], offset))
            offset += 1
        out = processor.process(records, NOW)
        assert out.dead_letters == []
        for name, value in out.ignored.items():
            counts[name] += value
        if 0 in out.changelog:
            changelog.extend(out.changelog[0])
    return processor, changelog, counts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries(stock_event))
def test_latest_occurred_at_wins_per_position(case: tuple[list[dict], list[list[int]]]) -> None:
    events, batches = case
    processor, changelog, counts = run(events, batches)

    # the model: first delivery of an event id counts; per key the newest occurred_at wins,
    # on equal occurred_at the later delivery wins
    model: dict[tuple[str, str, str], tuple] = {}
    seen: set[str] = set()
    duplicates = stale = 0
    last_seen: dict[str, float] = {}
    for index in (i for batch in batches for i in batch):
        event = events[index]
        if event["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(event["event_id"])
        ts = (BASE + timedelta(minutes=int(event["occurred_at"][14:16]))).timestamp()
        partner = event["partner_id"]
        last_seen[partner] = max(last_seen.get(partner, ts), ts)
        for p in event["positions"]:
            key = (partner, p["site_id"], p["material_id"])
            if key in model and model[key][4] > ts:
                stale += 1
                continue
            model[key] = (
                p["unit"],
                p["on_hand"],
                p["safety_stock"],
                p["daily_consumption"],
                ts,
                event["event_id"],
            )

    state = processor.state(0)
    got = {
        key: (r.unit, r.on_hand, r.safety_stock, r.daily_consumption, r.as_of, r.event_id)
        for key, r in state.positions.items()
    }
    assert got == model
    assert counts.get("duplicate", 0) == duplicates
    assert counts.get("out_of_order", 0) == stale
    assert state.last_seen == last_seen
    assert all(state.has_event(event["partner_id"], event["event_id"]) for event in events)

    # balances computed independently from the model
    surplus: dict[tuple[str, str], float] = defaultdict(float)
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (partner, _, material), (unit, on_hand, safety, *_rest) in model.items():
        surplus[(material, unit)] += max(0.0, on_hand - safety)
        holders[(material, unit)].add(partner)
    got_balances = {
        (b.material_id, b.unit): (b.total_surplus, b.partners)
        for b in state.balances.all()
        if b.partners or b.total_surplus
    }
    assert got_balances == {k: (surplus[k], len(holders[k])) for k in holders}

    # restart: the changelog rebuilds the same state
    restored = LedgerProcessor()
    restored.restore_partition(0, changelog, NOW)
    assert snapshot(restored.state(0)) == snapshot(state)


need_st = st.fixed_dictionaries(
    {
        "need_id": st.sampled_from(["n-1", "n-2"]),
        "site_id": st.sampled_from(SITES),
        "material_id": st.sampled_from(MATERIALS[:2]),
        "unit": st.just("pcs"),
        # zero withdraws the need
        "quantity": st.sampled_from([0.0, 0.0, 5.0, 10.0, 25.0]),
        "due_in": st.integers(-1, 10),
    }
)


@st.composite
def need_event(draw: st.DrawFn, index: int) -> dict:
    body = draw(need_st)
    due = TODAY + timedelta(days=body.pop("due_in"))
    return {
        "type": "NeedReported",
        "event_id": f"ev-need-{index:04d}",
        "partner_id": "p-alpha",
        "occurred_at": (BASE + timedelta(minutes=draw(st.integers(0, 6)))).isoformat(),
        "needed_by": due.isoformat(),
        "criticality": "normal",
        **body,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries(need_event))
def test_latest_need_report_wins_including_withdrawals(
    case: tuple[list[dict], list[list[int]]],
) -> None:
    events, batches = case
    processor, changelog, _ = run(events, batches)

    latest: dict[str, tuple[float, dict]] = {}
    seen: set[str] = set()
    for index in (i for batch in batches for i in batch):
        event = events[index]
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        ts = (BASE + timedelta(minutes=int(event["occurred_at"][14:16]))).timestamp()
        if event["need_id"] not in latest or latest[event["need_id"]][0] <= ts:
            latest[event["need_id"]] = (ts, event)
    open_needs = {
        ("p-alpha", need_id): (e["site_id"], e["material_id"], e["quantity"], e["needed_by"])
        for need_id, (_, e) in latest.items()
        if e["quantity"] > 0
    }
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    for (partner, _), (site, material, qty, _due) in open_needs.items():
        totals[(partner, site, material)] += qty

    state = processor.state(0)
    got = {k: (n.site_id, n.material_id, n.quantity, n.needed_by) for k, n in state.needs.items()}
    assert got == open_needs
    assert state.need_totals == totals
    # an open shortage exactly where a need is open
    assert set(state.shortages.open) == set(totals)
    by_material: dict[str, float] = defaultdict(float)
    for (_, _, material), qty in totals.items():
        by_material[material] += qty
    assert {b.material_id: b.total_need for b in state.balances.all() if b.total_need} == {
        m: q for m, q in by_material.items() if q
    }

    restored = LedgerProcessor()
    restored.restore_partition(0, changelog, NOW)
    assert snapshot(restored.state(0)) == snapshot(state)
