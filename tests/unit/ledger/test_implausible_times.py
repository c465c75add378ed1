"""Timestamps and days no real report has: refused with a reason, never stored."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import parse_partner_event
from services.ledger.processor import MAX_CLOCK_AHEAD_S, LedgerProcessor

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    Feed,
    dead_letters,
    make_alliance,
    need,
    offer,
    position,
    stock,
)


def test_an_event_from_the_future_is_dead_lettered_and_later_reports_still_apply() -> None:
    ledger = LedgerProcessor(make_alliance())
    feed = Feed()
    future = stock(HOSPITAL, position(on_hand=900), minutes=60 * 24 * 365 * 70)  # 2090s
    skewed = stock(HOSPITAL, position(material="MASK", on_hand=5), minutes=10)  # clock skew
    out = ledger.process(feed.batch(future, skewed), NOW)
    [letter] = dead_letters(out)
    assert letter.reason.startswith("from_the_future: occurred_at 2096-")
    assert "ahead of the ledger's clock" in letter.reason
    assert out.ignored == {}  # the skewed one is applied
    # the partner's next real report is not "out of order" behind the future one
    later = ledger.process(feed.batch(stock(HOSPITAL, position(on_hand=300), minutes=1)), NOW)
    assert later.ignored == {} and later.dead_letters == []
    state = ledger.state(0)
    assert state.positions[(HOSPITAL, "lager-1", "NACL-500ML")].on_hand == 300
    assert MAX_CLOCK_AHEAD_S >= 10 * 60


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({**stock(HOSPITAL), "occurred_at": "9999-12-31T20:00:00-14:00"}, "occurred_at"),
        ({**stock(HOSPITAL), "occurred_at": "1970-01-01T00:00:00+00:00"}, "occurred_at"),
        ({**need(HOSPITAL), "needed_by": "9999-12-31"}, "needed_by"),
        (
            {
                **offer(FACTORY),
                "available_from": "9999-12-31T20:00:00-14:00",
                "available_until": "9999-12-31T22:00:00-14:00",
            },
            "available_from",
        ),
    ],
)
def test_implausible_dates_are_refused_naming_the_field(event: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_partner_event(orjson.dumps(event))
    message = str(refused.value)
    assert field in message and "years 2000-2199" in message
    ledger = LedgerProcessor(make_alliance())
    out = ledger.process(Feed().batch(event), NOW)
    [letter] = dead_letters(out)
    assert field in " ".join([letter.reason, *letter.errors])
