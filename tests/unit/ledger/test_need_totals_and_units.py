"""Ledger bad input: need and balance totals after large figures are withdrawn, needs in
another unit than the stock they would be added to, totals beyond a single quantity's
bound."""

from __future__ import annotations

import pytest

from schemas.alerts import ShortageDetected
from services.ledger.processor import LedgerProcessor
from tests.unit.ledger.helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    Feed,
    balances,
    decode_alerts,
    detected,
    make_alliance,
    need,
    position,
    stock,
)


# -- ledger: need totals kept by float increments --------------------------------------------
def test_withdrawing_a_large_and_a_small_need_does_not_crash_the_batch() -> None:
    """Two needs of one partner/site/material, one large (1e8 + 0.7 is enough), both withdrawn: the
    running total ends at float residue (> 1e-9) instead of 0, ``_assess`` then takes
    ``min()`` over no needs and raises ValueError; the whole batch (here also another
    partner's stock report) is lost, and the same batch crashes again after a restart."""
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process(
        feed.batch(
            need(HOSPITAL, need_id="big", quantity=1e12, minutes=0),
            need(HOSPITAL, need_id="small", quantity=0.3, minutes=1),
        ),
        NOW,
    )
    processor.process(feed.batch(need(HOSPITAL, need_id="big", quantity=0, minutes=2)), NOW)
    out = processor.process(
        feed.batch(
            need(HOSPITAL, need_id="small", quantity=0, minutes=3),
            stock(FACTORY, position("halle-1", "BOLT-M8", on_hand=5, safety=10)),
        ),
        NOW,
    )
    state = processor.state(0)
    assert state.need_totals == {}
    assert (HOSPITAL, "lager-1", "NACL-500ML") not in state.shortages.open
    assert out.ingested["StockReported"] == 1


def test_one_partners_corrected_typo_does_not_skew_the_material_balance() -> None:
    """Partner A reports a need of 0.3; partner B a typo of 1e12, then corrects it to 0.
    The reported alliance balance must go back to 0.3, not 0.30004882..."""
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    processor.process(feed.batch(need(FACTORY, site="halle-1", quantity=0.3)), NOW)
    processor.process(feed.batch(need(HOSPITAL, quantity=1e12, minutes=1)), NOW)
    processor.process(feed.batch(need(HOSPITAL, quantity=0, minutes=2)), NOW)
    total = balances(processor)[("NACL-500ML", "pcs")].total_need
    assert total == pytest.approx(0.3, abs=1e-9)


# -- ledger: units -----------------------------------------------------------------------------
def test_need_in_another_unit_is_not_added_to_the_positions_unit() -> None:
    """Position in pcs, one need in kg and one in pcs for the same site/material: the alert
    says ``unit: pcs, need_quantity: 8`` (5 kg + 3 pcs). Either the kg need is refused with a
    dead letter, or the need figure of a pcs alert counts pcs only."""
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    out = processor.process(
        feed.batch(
            stock(HOSPITAL, position(on_hand=100, safety=10, unit="pcs")),
            need(HOSPITAL, need_id="a", quantity=5, unit="kg"),
            need(HOSPITAL, need_id="b", quantity=3, unit="pcs", minutes=1),
        ),
        NOW,
    )
    alerts = detected(out)
    assert out.rejected or all(a.need_quantity == 3 for a in alerts if a.unit.value == "pcs"), [
        (a.unit.value, a.need_quantity) for a in alerts
    ]


# -- ledger: aggregates vs. the alert contract ---------------------------------------------------
def test_summed_need_above_the_quantity_limit_still_gives_a_valid_alert() -> None:
    """Each need is a valid Quantity (<= 1e12), their sum is not: the ShortageDetected the
    ledger publishes then violates its own contract (need_quantity <= 1e12)."""
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    out = processor.process(
        feed.batch(
            need(HOSPITAL, need_id="a", quantity=9e11),
            need(HOSPITAL, need_id="b", quantity=9e11, minutes=1),
        ),
        NOW,
    )
    alerts = decode_alerts(out)  # validates every alert with its contract model
    assert any(isinstance(a, ShortageDetected) for a in alerts)


def test_a_need_in_another_unit_than_an_open_need_is_dead_lettered_naming_both() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    out = processor.process(
        feed.batch(
            need(HOSPITAL, need_id="a", quantity=5, unit="pcs"),
            need(HOSPITAL, need_id="b", quantity=3, unit="kg", minutes=1),
        ),
        NOW,
    )
    assert out.rejected == {"unit_mismatch": 1}
    assert "'b' is in kg" in out.dead_letters[0][1].decode()
    assert "'a'" in out.dead_letters[0][1].decode()
    assert processor.state(0).need_totals == {(HOSPITAL, "lager-1", "NACL-500ML"): 5}
