"""The bridge refuses to forward a partner record that would poison a reader: numbers that are
not finite (``1e999`` overflows a float to inf, ``NaN``) and Kafka timestamps outside the years
the contracts accept (the bridge copies the timestamp through). Both are dead-lettered with the
reason; a host clock off by decades cannot make dead-lettering fail."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.alerts import DeadLetter
from services.bridge import routing
from services.bridge.routing import (
    EARLIEST_TIMESTAMP_MS,
    LATEST_TIMESTAMP_MS,
    Forward,
    Record,
    Rejection,
    dead_letter,
    partner_event_types,
    route_inbound,
    route_outbound,
)
from services.common.topics import DEAD_LETTERS, PARTNER_EVENTS, PARTNER_ORDERS
from tests.unit.bridge.test_service import EVENTS, FakeProducer, _bridge

OWNER = "klinik-a"
EVENTS_TOPIC = f"verbund.partner.{OWNER}.events"
TYPES = partner_event_types()
MAX = 10_000
NOW_MS = 1_700_000_000_000
YEAR_10000_MS = 253_402_300_800_000


def _ack(**literals: str) -> bytes:
    body = {
        "type": "OrderAcknowledged",
        "schema_version": 1,
        "event_id": "evt-00000001",
        "partner_id": OWNER,
        "occurred_at": "2026-11-22T08:00:00+01:00",
        "order_id": "run-1:o-1",
        "accepted": True,
    }
    text = json.dumps(body)
    for name, literal in literals.items():  # raw literals json.dumps would not write
        text = text[:-1] + f', "{name}": {literal}}}'
    return text.encode()


def _inbound(value: bytes, timestamp_ms: int | None = NOW_MS) -> Record:
    return Record(EVENTS_TOPIC, 0, 41, OWNER.encode(), value, timestamp_ms)


def _rejection(route: Forward | Rejection) -> Rejection:
    assert isinstance(route, Rejection), route
    return route


@pytest.mark.parametrize(
    ("literal", "where"),
    [
        ("1e999", "$.n"),
        ("-1e999", "$.n"),
        ("1" * 400 + ".5", "$.n"),
        ('{"lines": [1, 2, {"q": 2e400}]}', "$.n.lines[2].q"),
    ],
)
def test_a_number_that_overflows_to_infinity_is_dead_lettered(literal: str, where: str) -> None:
    rejection = _rejection(route_inbound(_inbound(_ack(n=literal)), OWNER, TYPES, MAX))
    assert rejection.reason == routing.INVALID_JSON
    assert where in rejection.detail and "not a finite number" in rejection.detail


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_dead_lettered(literal: str) -> None:
    rejection = _rejection(route_inbound(_inbound(_ack(n=literal)), OWNER, TYPES, MAX))
    assert rejection.reason == routing.INVALID_JSON


def test_finite_numbers_are_forwarded_byte_for_byte() -> None:
    value = _ack(n="1e308", m="-0.0", k="1" * 400)  # a big integer is exact, not a float
    route = route_inbound(_inbound(value), OWNER, TYPES, MAX)
    assert route == Forward(PARTNER_EVENTS.name, OWNER.encode(), value, NOW_MS)


def test_an_order_with_a_number_that_is_not_finite_is_not_sent_to_a_partner() -> None:
    order = b'{"type": "OrderIssued", "recipient": "klinik-a", "quantity": 1e999}'
    record = Record(PARTNER_ORDERS.name, 3, 7, OWNER.encode(), order, NOW_MS)
    rejection = _rejection(route_outbound(record, frozenset({OWNER})))
    assert rejection.reason == routing.INVALID_JSON and "$.quantity" in rejection.detail


@pytest.mark.parametrize(
    "timestamp_ms",
    [YEAR_10000_MS, 2**63 - 1, LATEST_TIMESTAMP_MS + 1, EARLIEST_TIMESTAMP_MS - 1, 0, -5],
)
def test_a_timestamp_outside_the_contract_years_is_dead_lettered(timestamp_ms: int) -> None:
    rejection = _rejection(route_inbound(_inbound(_ack(), timestamp_ms), OWNER, TYPES, MAX))
    assert rejection.reason == routing.INVALID_TIMESTAMP
    assert f"{timestamp_ms} ms" in rejection.detail and "2000-2199" in rejection.detail


@pytest.mark.parametrize(
    "timestamp_ms", [EARLIEST_TIMESTAMP_MS, LATEST_TIMESTAMP_MS, NOW_MS, None, -1]
)
def test_timestamps_in_range_or_absent_are_forwarded(timestamp_ms: int | None) -> None:
    route = route_inbound(_inbound(_ack(), timestamp_ms), OWNER, TYPES, MAX)
    assert route == Forward(PARTNER_EVENTS.name, OWNER.encode(), _ack(), timestamp_ms)


def test_the_timestamp_bounds_are_the_contract_years() -> None:
    assert EARLIEST_TIMESTAMP_MS == 946_684_800_000  # 2000-01-01T00:00:00Z
    assert LATEST_TIMESTAMP_MS == 7_258_118_400_000 - 1  # just before 2200-01-01T00:00:00Z


@pytest.mark.parametrize("now", [0.0, -1e12, 1e20, YEAR_10000_MS / 1000])
def test_a_dead_letter_is_written_whatever_the_host_clock_says(now: float) -> None:
    record = _inbound(_ack(n="1e999"))
    letter = dead_letter(record, Rejection(routing.INVALID_JSON, "x"), now)
    parsed = DeadLetter.model_validate_json(letter.value)
    assert 2000 <= parsed.received_at.year <= 2199


def _message(offset: int, value: bytes, timestamp: int = NOW_MS) -> Any:
    return SimpleNamespace(offset=offset, key=None, value=value, timestamp=timestamp)


async def test_the_bridge_dead_letters_them_and_forwards_the_rest(tmp_path: Path) -> None:
    producer = FakeProducer()
    bridge, consumer = _bridge(tmp_path, producer)
    good = _ack()
    poisoned = _ack(n="1e999")
    messages = [
        _message(10, poisoned),
        _message(11, good, timestamp=YEAR_10000_MS),
        _message(12, good),
    ]
    await bridge.handle({EVENTS: messages})
    assert [t for t, _ in producer.acked] == [
        DEAD_LETTERS.name,
        DEAD_LETTERS.name,
        PARTNER_EVENTS.name,
    ]
    first, second = (DeadLetter.model_validate_json(v) for _, v in producer.acked[:2])
    assert first.reason.startswith("invalid_json: ")
    assert "$.n" in first.reason and base64.b64decode(first.original_base64) == poisoned
    assert second.reason.startswith("invalid_timestamp: ") and second.source_offset == 11
    assert producer.acked[2] == (PARTNER_EVENTS.name, good)
    assert consumer.commits == [({EVENTS: 13}, 3)]
