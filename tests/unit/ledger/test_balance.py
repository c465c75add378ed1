"""Per-material balance: open need vs. surplus above safety stock, without double counting."""

from __future__ import annotations

import pytest

from schemas.alerts import MaterialBalancesReported
from services.ledger.balance import MaterialBalances
from services.ledger.processor import LedgerProcessor

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    Feed,
    balances,
    make_alliance,
    need,
    position,
    stock,
)


def totals(processor: LedgerProcessor, partition: int = 0) -> dict[tuple[str, str], tuple]:
    return {
        (b.material_id, b.unit): (b.total_need, b.total_surplus, b.partners)
        for b in processor.state(partition).balances.all()
    }


def fresh() -> tuple[LedgerProcessor, Feed]:
    return LedgerProcessor(make_alliance()), Feed()


def test_surplus_is_stock_above_safety_summed_over_sites_and_partners() -> None:
    processor, feed = fresh()
    processor.process(
        feed.batch(
            stock(
                HOSPITAL,
                position("lager-1", "NACL-500ML", on_hand=100, safety=30),
                position("lager-2", "NACL-500ML", on_hand=50, safety=20),
            ),
            stock(FACTORY, position("halle-1", "NACL-500ML", on_hand=10, safety=40)),
        ),
        NOW,
    )
    # 70 + 30 + 0 (below safety stock gives no negative surplus); two distinct partners
    assert totals(processor) == {("NACL-500ML", "pcs"): (0, 100, 2)}


def test_update_replaces_the_earlier_value() -> None:
    processor, feed = fresh()
    processor.process([feed(stock(HOSPITAL, position(on_hand=100, safety=30), minutes=0))], NOW)
    processor.process([feed(stock(HOSPITAL, position(on_hand=60, safety=30), minutes=1))], NOW)
    processor.process([feed(stock(HOSPITAL, position(on_hand=80, safety=30), minutes=2))], NOW)
    assert totals(processor) == {("NACL-500ML", "pcs"): (0, 50, 1)}
    processor.process([feed(stock(HOSPITAL, position(on_hand=10, safety=30), minutes=3))], NOW)
    assert totals(processor) == {("NACL-500ML", "pcs"): (0, 0, 1)}


def test_stale_and_duplicate_events_do_not_count() -> None:
    processor, feed = fresh()
    event = stock(HOSPITAL, position(on_hand=100, safety=30), minutes=5)
    processor.process([feed(event), feed(event)], NOW)
    processor.process([feed(stock(HOSPITAL, position(on_hand=999, safety=0), minutes=1))], NOW)
    assert totals(processor) == {("NACL-500ML", "pcs"): (0, 70, 1)}


def test_unit_change_moves_the_position_to_the_new_unit() -> None:
    processor, feed = fresh()
    processor.process(
        feed.batch(
            stock(HOSPITAL, position("lager-1", "STEEL", on_hand=5, safety=1, unit="t")),
            stock(FACTORY, position("halle-1", "STEEL", on_hand=3, safety=1, unit="t")),
        ),
        NOW,
    )
    processor.process(
        [
            feed(
                stock(
                    HOSPITAL,
                    position("lager-1", "STEEL", on_hand=5000, safety=1000, unit="kg"),
                    minutes=1,
                )
            )
        ],
        NOW,
    )
    got = totals(processor)
    assert got[("STEEL", "t")] == (0, 2, 1)
    assert got[("STEEL", "kg")] == (0, 4000, 1)


def test_need_totals_replace_move_and_withdraw() -> None:
    processor, feed = fresh()
    processor.process(
        feed.batch(
            need(HOSPITAL, "n-1", quantity=40, minutes=0),
            need(HOSPITAL, "n-2", site="lager-2", quantity=10, minutes=0),
        ),
        NOW,
    )
    assert totals(processor)[("NACL-500ML", "pcs")][0] == 50
    processor.process([feed(need(HOSPITAL, "n-1", quantity=25, minutes=1))], NOW)
    assert totals(processor)[("NACL-500ML", "pcs")][0] == 35
    # moving the need to another site does not change the material total
    processor.process([feed(need(HOSPITAL, "n-1", site="lager-2", quantity=25, minutes=2))], NOW)
    assert totals(processor)[("NACL-500ML", "pcs")][0] == 35
    assert processor.state(0).need_totals == {(HOSPITAL, "lager-2", "NACL-500ML"): 35}
    # a unit change moves the quantity between units (n-2 to a site with nothing in pcs;
    # in pcs next to n-1 it would be refused: unit_mismatch)
    processor.process(
        [feed(need(HOSPITAL, "n-2", site="lager-1", quantity=2, unit="kg", minutes=3))], NOW
    )
    got = totals(processor)
    assert got[("NACL-500ML", "pcs")][0] == 25
    assert got[("NACL-500ML", "kg")][0] == 2
    processor.process(
        feed.batch(
            need(HOSPITAL, "n-1", quantity=0, minutes=4),
            need(HOSPITAL, "n-2", quantity=0, minutes=4),
        ),
        NOW,
    )
    got = totals(processor)
    # withdrawn everywhere: the material no longer appears in the balances
    assert ("NACL-500ML", "pcs") not in got
    assert ("NACL-500ML", "kg") not in got
    assert processor.state(0).need_totals == {}


def test_need_and_surplus_of_one_material_side_by_side() -> None:
    processor, feed = fresh()
    processor.process(
        feed.batch(
            stock(FACTORY, position("halle-1", "NACL-500ML", on_hand=300, safety=100)),
            need(HOSPITAL, quantity=120),
        ),
        NOW,
    )
    report = balances(processor)[("NACL-500ML", "pcs")]
    assert (report.total_need, report.total_surplus, report.partners) == (120, 200, 1)
    [(key, raw)] = processor.balance_reports(NOW + 1) or [(b"", b"")]
    assert raw == b""  # nothing changed since the last report
    processor.process([feed(need(HOSPITAL, quantity=20, minutes=1))], NOW)
    [(key, raw)] = processor.balance_reports(NOW + 2)
    report_of_partition = MaterialBalancesReported.model_validate_json(raw)
    assert key == b"balances-0" and report_of_partition.partition == 0
    assert [b.total_need for b in report_of_partition.balances] == [20]


def test_balance_reports_only_changed_materials() -> None:
    processor, feed = fresh()
    processor.process(
        feed.batch(
            stock(
                HOSPITAL,
                position("lager-1", "A-1", on_hand=5, safety=1),
                position("lager-1", "B-1", on_hand=5, safety=1),
            ),
        ),
        NOW,
    )
    assert set(balances(processor)) == {("A-1", "pcs"), ("B-1", "pcs")}
    assert balances(processor) == {}
    processor.process(
        [feed(stock(HOSPITAL, position("lager-1", "B-1", on_hand=9, safety=1), minutes=1))], NOW
    )
    assert {k: v.total_surplus for k, v in balances(processor).items()} == {("B-1", "pcs"): 8}


def test_partitions_report_separately() -> None:
    processor, feed = fresh()
    processor.process(
        [
            feed(stock(HOSPITAL, position(on_hand=50, safety=0)), partition=0),
            feed(stock(FACTORY, position("halle-1", on_hand=20, safety=0)), partition=1),
        ],
        NOW,
    )
    assert totals(processor, 0) == {("NACL-500ML", "pcs"): (0, 50, 1)}
    assert totals(processor, 1) == {("NACL-500ML", "pcs"): (0, 20, 1)}


@pytest.mark.parametrize("steps", [10, 1000])
def test_repeated_fractional_updates_do_not_drift(steps: int) -> None:
    balances_ = MaterialBalances()
    key = ("X", "kg")
    balances_.add_holder(key, "p", 1)
    balances_.set_surplus(key, ("q", "s"), 1e12)  # another holder's large figure, then gone
    value = 0.0
    for i in range(steps):
        value = (i % 7) * 0.1 + 0.3
        balances_.set_surplus(key, ("p", "s"), value)
    balances_.set_surplus(key, ("q", "s"), 0.0)
    assert balances_.get(key).total_surplus == round(value, 9)  # exactly, no residue
    balances_.set_surplus(key, ("p", "s"), 0.0)
    balances_.add_holder(key, "p", -1)
    assert balances_.get(key).total_surplus == 0
    assert balances_.get(key).partners == 0
