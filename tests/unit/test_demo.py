"""The demo alliance gives every library protocol kind something to decide.

The demo's events go through the ledger and the coordinator's replica into snapshots, as in
``verbund up --demo``; each protocol kind must find input and issue orders.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson

from protocols.decisions import CapacityAssignment, PurchaseShare, TransferOrder
from protocols.loader import load_library
from protocols.run import solve
from schemas.purchasing import SupplierQuoteSet
from services.coordinator.quotes import QuoteBook
from services.coordinator.replica import AllianceReplica
from services.coordinator.snapshot import build_snapshot
from services.demo.alliance import demo_alliance
from services.demo.quotes import DEMO_QUOTES
from services.demo.simulation import Simulation
from services.ledger.processor import Inbound, LedgerProcessor

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
DISRUPTION = 5


def _run_demo(ticks: int) -> tuple[AllianceReplica, Counter[str]]:
    alliance = demo_alliance()
    simulation = Simulation(alliance, disruption_at_tick=DISRUPTION)
    ledger = LedgerProcessor(alliance)
    replica = AllianceReplica()
    kinds: Counter[str] = Counter()
    offsets: Counter[int] = Counter()
    for tick in range(ticks):
        now = START + timedelta(minutes=tick)
        events = simulation.step(now)
        kinds.update(e.type for e in events)
        batch = [
            Inbound(
                "verbund.partner.events", 0, i, e.partner_id.encode(), e.model_dump_json().encode()
            )
            for i, e in enumerate(events)
        ]
        out = ledger.process(batch, now.timestamp())
        assert not out.dead_letters, out.dead_letters[:1]
        for partition, records in out.changelog.items():
            for raw in records:
                replica.apply(partition, offsets[partition], raw)
                offsets[partition] += 1
    return replica, kinds


def _quotes() -> QuoteBook:
    book = QuoteBook()
    for supplier, material, tiers in DEMO_QUOTES:
        book.put(
            SupplierQuoteSet.model_validate_json(
                orjson.dumps(
                    {
                        "command_id": "cmd-0123456789abcdef",
                        "supplier_id": supplier,
                        "material_id": material,
                        "tiers": [{"min_quantity": q, "unit_price": p} for q, p in tiers],
                        "set_by": "coord-demo",
                        "at": START.isoformat(),
                    }
                )
            )
        )
    return book


def test_demo_sends_every_kind_of_partner_event() -> None:
    _, kinds = _run_demo(DISRUPTION + 1)
    assert kinds["StockReported"] > 0
    assert kinds["CapacityOffered"] > 0
    assert kinds["CapacityNeeded"] > 0
    assert kinds["PurchaseDemandReported"] > 0


def test_every_library_protocol_kind_decides_on_the_demo() -> None:
    replica, _ = _run_demo(DISRUPTION + 12)  # hospitals fall below safety stock: needs
    alliance = demo_alliance()
    library = load_library().protocols
    now = START + timedelta(minutes=DISRUPTION + 12)
    expected = {
        "bulk-material-reallocation": TransferOrder,
        "capacity-sharing": CapacityAssignment,
        "joint-purchasing": PurchaseShare,
    }
    for protocol_id, order_type in expected.items():
        protocol = library[protocol_id]
        snapshot = build_snapshot(
            alliance,
            replica.states.values(),
            protocol,
            now.date(),
            now.timestamp(),
            None,
            _quotes().offers(None, now.date()),
        )
        result = solve(protocol, snapshot, run_id="run-0123456789ab")
        orders = [o for o in result.decision.orders() if isinstance(o, order_type)]
        assert orders, f"{protocol_id}: no {order_type.__name__} on the demo"
        if order_type is PurchaseShare:
            assert all(o.saving >= 0 for o in orders)
        if order_type is CapacityAssignment:
            # a partner whose machines are down withdrew its idle-hours offer
            offering = {(o.partner_id, o.capability) for o in snapshot.capacity_offers}
            needing = {(n.partner_id, n.capability) for n in snapshot.capacity_needs}
            assert needing and not offering & needing
