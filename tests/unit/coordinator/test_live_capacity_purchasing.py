"""Capacity sharing and joint purchasing from live partner events, without Kafka.

The path the services take: partner events -> ledger processor -> changelog -> the
coordinator's replica -> snapshot -> solve -> orders -> answers -> re-plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from protocols.decisions import CapacityAssignment, PurchaseShare
from protocols.loader import load_library
from protocols.run import solve
from schemas.alliance import Alliance
from schemas.coordination import OrderState, RunState
from schemas.protocol import Protocol
from schemas.purchasing import SupplierQuoteSet
from schemas.scenario import Scenario
from services.coordinator.core import Coordinator
from services.coordinator.quotes import QuoteBook
from services.coordinator.replica import AllianceReplica
from services.coordinator.snapshot import Adjustments, build_snapshot, need_key
from services.ledger.processor import Inbound, LedgerProcessor

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC).timestamp()
TODAY = date(2026, 11, 22)
LIBRARY = load_library().protocols
CAPACITY = LIBRARY["capacity-sharing"]
PURCHASING = LIBRARY["joint-purchasing"]
REALLOCATION = LIBRARY["bulk-material-reallocation"]


def _partner(pid: str, criticality: str, lon: float) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "sector": "hospital" if criticality == "hospital" else "manufacturing",
        "region": "DE-BY",
        "criticality": criticality,
        "sites": [{"id": "s1", "name": "site", "latitude": 48.1, "longitude": lon}],
    }


ALLIANCE = Alliance.model_validate(
    {
        "name": "live",
        "partners": [
            _partner("klinik-a", "hospital", 11.50),
            _partner("klinik-b", "hospital", 11.60),
            _partner("werk-nah", "normal", 11.55),
            _partner("werk-fern", "normal", 12.50),
        ],
        "agreements": {
            "capacity_lending": [{"partner_id": "werk-nah"}, {"partner_id": "werk-fern"}],
            "purchasing_pools": [
                {"partner_id": "klinik-a", "materials": ["MASK-FFP2"]},
                {"partner_id": "klinik-b", "materials": ["MASK-FFP2"]},
            ],
        },
    },
    strict=False,
)


def _envelope(kind: str, partner: str, n: int) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"evt-{partner}-{kind}-{n}",
        "partner_id": partner,
        "occurred_at": datetime.fromtimestamp(NOW - 60 + n, UTC).isoformat(),
    }


def offer(partner: str, offer_id: str, hours: float, n: int = 0) -> dict[str, Any]:
    return _envelope("CapacityOffered", partner, n) | {
        "offer_id": offer_id,
        "site_id": "s1",
        "capability": "sterilisation",
        "qualifications": ["iso-13485"],
        "hours": hours,
        "available_from": datetime.fromtimestamp(NOW - 3600, UTC).isoformat(),
        "available_until": datetime.fromtimestamp(NOW + 7 * 86400, UTC).isoformat(),
    }


def capacity_need(partner: str, need_id: str, hours: float, n: int = 0) -> dict[str, Any]:
    return _envelope("CapacityNeeded", partner, n) | {
        "need_id": need_id,
        "site_id": "s1",
        "capability": "sterilisation",
        "required_qualifications": ["iso-13485"],
        "hours": hours,
        "needed_by": "2026-11-25",
        "criticality": "hospital",
    }


def demand(partner: str, quantity: float, n: int = 0) -> dict[str, Any]:
    return _envelope("PurchaseDemandReported", partner, n) | {
        "material_id": "MASK-FFP2",
        "unit": "pcs",
        "quantity": quantity,
    }


def quote(supplier: str, tiers: list[tuple[float, float]], **extra: Any) -> SupplierQuoteSet:
    return SupplierQuoteSet.model_validate(
        {
            "command_id": "cmd-0123456789abcdef",
            "supplier_id": supplier,
            "material_id": extra.pop("material", "MASK-FFP2"),
            "tiers": [{"min_quantity": m, "unit_price": p} for m, p in tiers],
            "set_by": "coord-anna",
            "at": "2026-11-22T07:00:00Z",
            **extra,
        },
        strict=False,
    )


def replica_after(events: Iterable[dict[str, Any]]) -> AllianceReplica:
    """Run events through the ledger and fold its changelog into a coordinator replica."""
    ledger = LedgerProcessor(ALLIANCE)
    batch = [
        Inbound("verbund.partner.events", 0, offset, e["partner_id"].encode(), orjson.dumps(e))
        for offset, e in enumerate(events)
    ]
    out = ledger.process(batch, NOW)
    assert not out.dead_letters, out.dead_letters
    replica = AllianceReplica()
    for partition, records in out.changelog.items():
        for offset, raw in enumerate(records):
            replica.apply(partition, offset, raw)
    return replica


def snapshot_of(
    replica: AllianceReplica,
    protocol: Protocol,
    adjust: Adjustments | None = None,
    quotes: QuoteBook | None = None,
) -> Scenario:
    offers = quotes.offers(None, TODAY) if quotes else []
    return build_snapshot(ALLIANCE, replica.states.values(), protocol, TODAY, NOW, adjust, offers)


CAPACITY_EVENTS = [
    offer("werk-nah", "o1", 10),
    offer("werk-fern", "o2", 30),
    capacity_need("klinik-a", "steri", 16),
]


def test_capacity_snapshot_holds_offers_and_needs_but_no_stock_or_prices() -> None:
    replica = replica_after([*CAPACITY_EVENTS, demand("klinik-a", 500)])
    snap = snapshot_of(replica, CAPACITY, quotes=_book(quote("sup", [(0, 2.0)])))
    assert {o.offer_id: o.hours for o in snap.capacity_offers} == {
        need_key("werk-nah", "o1"): 10,
        need_key("werk-fern", "o2"): 30,
    }
    [need] = snap.capacity_needs
    assert (need.partner_id, need.hours, need.capability) == ("klinik-a", 16, "sterilisation")
    assert not snap.positions and not snap.purchasing.demands and not snap.purchasing.suppliers
    # and a reallocation run sees no capacity or purchasing data
    other = snapshot_of(replica, REALLOCATION, quotes=_book(quote("sup", [(0, 2.0)])))
    assert not other.capacity_offers and not other.capacity_needs
    assert not other.purchasing.demands and not other.purchasing.suppliers


def test_capacity_available_only_later_is_used_only_for_needs_due_after_it() -> None:
    """werk-nah's offer starts in 5 days, after klinik-a's need is due: the far one serves."""
    late = offer("werk-nah", "o1", 30) | {
        "available_from": datetime.fromtimestamp(NOW + 5 * 86400, UTC).isoformat(),
        "available_until": datetime.fromtimestamp(NOW + 9 * 86400, UTC).isoformat(),
    }
    near_late = [late, offer("werk-fern", "o2", 30), capacity_need("klinik-a", "x", 16)]
    replica = replica_after(near_late)
    snap = snapshot_of(replica, CAPACITY)
    starts = {o.partner_id: o.available_from for o in snap.capacity_offers}
    assert starts == {"werk-nah": date(2026, 11, 27), "werk-fern": None}
    result = solve(CAPACITY, snap)
    assert [a.provider_partner for a in result.decision.capacity_assignments] == ["werk-fern"]


def test_capacity_run_assigns_near_hours_first_and_replans_after_a_decline() -> None:
    replica = replica_after(CAPACITY_EVENTS)
    core = Coordinator({CAPACITY.id: CAPACITY})
    run, started, _ = core.trigger(CAPACITY.id, "manual", NOW)
    assert started and run.state is RunState.AWAITING_APPROVAL  # one coordinator approves
    core.approve(run.run_id, "coord-anna", "tok1", NOW)
    result = solve(CAPACITY, snapshot_of(replica, CAPACITY, run.adjustments), run_id=run.run_id)
    core.solved(run.run_id, result, 0.01, NOW)
    assignments = {
        o.source.provider_partner: o
        for o in run.current_orders()
        if isinstance(o.source, CapacityAssignment)
    }
    assert assignments["werk-nah"].source.hours == pytest.approx(10)  # all of the near offer
    assert assignments["werk-fern"].source.hours == pytest.approx(6)
    # the near plant accepts, the far one declines: the re-plan keeps the accepted hours
    core.acknowledge(assignments["werk-nah"].order_id, "werk-nah", True, None, NOW)
    _, replan = core.acknowledge(assignments["werk-fern"].order_id, "werk-fern", False, "", NOW)
    assert replan
    again = snapshot_of(replica, CAPACITY, run.adjustments)
    [need] = again.capacity_needs
    assert need.hours == pytest.approx(6)  # 16 needed, 10 already accepted
    assert again.capacity_offers == []  # near offer used up, far offer declined
    second = solve(CAPACITY, again, run_id=run.run_id)
    assert not [o for o in second.decision.orders() if isinstance(o, CapacityAssignment)]


def _book(*quotes: SupplierQuoteSet) -> QuoteBook:
    book = QuoteBook()
    for q in quotes:
        book.put(q)
    return book


def test_purchasing_run_pools_live_demands_at_the_quoted_tier() -> None:
    replica = replica_after([demand("klinik-a", 600), demand("klinik-b", 500)])
    book = _book(
        quote("medsupply", [(0, 2.0), (1000, 1.5)]),
        quote("other", [(0, 9.0)], material="GLOVES-M"),  # not this pool's material
    )
    snap = snapshot_of(replica, PURCHASING, quotes=book)
    assert [s.supplier_id for s in snap.purchasing.suppliers] == ["medsupply"]
    assert {(d.partner_id, d.quantity) for d in snap.purchasing.demands} == {
        ("klinik-a", 600),
        ("klinik-b", 500),
    }
    assert not snap.capacity_offers and not snap.positions
    result = solve(PURCHASING, snap, run_id="run-0123456789ab")
    shares = {o.partner_id: o for o in result.decision.orders() if isinstance(o, PurchaseShare)}
    assert set(shares) == {"klinik-a", "klinik-b"}
    for share in shares.values():
        assert share.unit_price_pooled == pytest.approx(1.5)  # 1,100 together reach the tier
        assert share.cost_pooled <= share.cost_alone + 1e-9 and share.saving > 0


def test_a_decline_repools_the_material_and_reissues_accepted_shares() -> None:
    """All or nothing per material: A accepts, B declines -> A and C are pooled again (A's
    accepted share is cancelled and issued anew), and the new shares add up to what the
    smaller pool really costs."""
    alliance = Alliance.model_validate(
        ALLIANCE.model_dump(mode="json")
        | {
            "agreements": {
                "purchasing_pools": [
                    {"partner_id": p, "materials": ["MASK-FFP2"]}
                    for p in ("klinik-a", "klinik-b", "werk-nah")
                ]
            }
        },
        strict=False,
    )
    replica = replica_after(
        [demand("klinik-a", 600), demand("klinik-b", 300), demand("werk-nah", 500)]
    )
    book = _book(quote("medsupply", [(0, 2.0), (1000, 1.5)]))

    def snap(adjust: Adjustments) -> Scenario:
        offers = book.offers(None, TODAY)
        return build_snapshot(
            alliance, replica.states.values(), PURCHASING, TODAY, NOW, adjust, offers
        )

    core = Coordinator({PURCHASING.id: PURCHASING})
    run, _, _ = core.trigger(PURCHASING.id, "manual", NOW)
    core.approve(run.run_id, "coord-anna", "tok1", NOW)
    core.approve(run.run_id, "coord-ben", "tok2", NOW)
    core.solved(run.run_id, solve(PURCHASING, snap(run.adjustments), run_id=run.run_id), 0.01, NOW)
    first = {o.responder: o for o in run.current_orders()}
    assert first["klinik-a"].source.unit_price_pooled == pytest.approx(1.5)  # 1,400 together
    core.acknowledge(first["klinik-a"].order_id, "klinik-a", True, None, NOW)
    _, replan = core.acknowledge(first["klinik-b"].order_id, "klinik-b", False, "", NOW)
    assert replan
    assert first["klinik-a"].state is OrderState.CANCELLED  # its price no longer holds
    assert run.adjustments.excluded_demands == {("klinik-b", "MASK-FFP2")}
    core.solved(run.run_id, solve(PURCHASING, snap(run.adjustments), run_id=run.run_id), 0.01, NOW)
    second = {o.responder: o.source for o in run.current_orders()}
    assert set(second) == {"klinik-a", "werk-nah"}
    # 1,100 units still reach the 1,000 tier: the shares pay exactly the pool's bill
    assert sum(s.cost_pooled for s in second.values()) == pytest.approx(1100 * 1.5)
    assert all(s.cost_pooled <= s.cost_alone + 1e-9 for s in second.values())


def test_withdrawn_and_changed_items_reach_the_snapshot() -> None:
    replica = replica_after(
        [
            *CAPACITY_EVENTS,
            capacity_need("klinik-a", "steri", 0, n=5),  # withdrawn
            capacity_need("klinik-b", "steri", 4, n=5),
            offer("werk-fern", "o2", 0, n=5),  # withdrawn
            demand("klinik-a", 600),
            demand("klinik-a", 650, n=6),  # changed
        ]
    )
    cap = snapshot_of(replica, CAPACITY)
    assert [(n.partner_id, n.hours) for n in cap.capacity_needs] == [("klinik-b", 4)]
    assert [o.partner_id for o in cap.capacity_offers] == ["werk-nah"]
    pur = snapshot_of(replica, PURCHASING)
    assert [(d.partner_id, d.quantity) for d in pur.purchasing.demands] == [("klinik-a", 650)]


def test_quote_book_newest_wins_withdrawal_expiry_and_bad_records() -> None:
    book = QuoteBook()
    records = [
        quote("a", [(0, 3.0)]).model_dump_json().encode(),
        b'{"v": 1, "p": 0, "marker": "recovery"}',
        b"{not json",
        quote("a", [(0, 2.5), (100, 2.0)]).model_dump_json().encode(),
        quote("b", [(0, 1.0)], valid_until="2026-11-21").model_dump_json().encode(),
        quote("c", [(0, 4.0)]).model_dump_json().encode(),
        quote("c", []).model_dump_json().encode(),  # withdrawn
    ]
    assert book.load(records) == 5
    assert sorted(book.quotes) == [("a", "MASK-FFP2"), ("b", "MASK-FFP2")]
    [usable] = book.offers(["MASK-FFP2"], TODAY)  # b expired yesterday
    assert usable.supplier_id == "a" and [t.unit_price for t in usable.tiers] == [2.5, 2.0]
    assert book.offers(["GLOVES-M"], TODAY) == []


def test_quote_tiers_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        quote("a", [(100, 2.0), (0, 2.5)])


def test_long_item_ids_of_one_partner_do_not_collide() -> None:
    partner = "p" + "x" * 39
    a, b = need_key(partner, "n" * 63 + "a"), need_key(partner, "n" * 63 + "b")
    assert a != b and len(a) <= 64 and len(b) <= 64
    assert need_key("klinik-a", "steri") == "klinik-a.steri"  # short ids stay readable


def test_a_material_is_never_added_up_across_units() -> None:
    kg = demand("klinik-b", 5) | {"unit": "kg"}
    replica = replica_after([demand("klinik-a", 600), kg])
    snap = snapshot_of(replica, PURCHASING)
    assert [(d.partner_id, d.quantity) for d in snap.purchasing.demands] == [("klinik-a", 600)]
    assert [(m.id, m.unit.value) for m in snap.materials] == [("MASK-FFP2", "pcs")]
