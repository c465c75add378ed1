"""Bad input goes to dead letters with its original bytes; the next valid message still counts."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from services.common.dead_letters import MAX_DEAD_LETTER_ORIGINAL_BYTES
from services.ledger.dedup import event_key
from services.ledger.processor import MAX_MESSAGE_BYTES, Inbound, LedgerProcessor

from .helpers import (
    FACTORY,
    HOSPITAL,
    NOW,
    TOPIC,
    Feed,
    dead_letters,
    make_alliance,
    need,
    offer,
    position,
    stock,
)


def valid_event() -> dict:
    return stock(HOSPITAL, position("lager-2", "VALID-1", on_hand=42))


def _negative() -> tuple[bytes, bytes]:
    event = stock(HOSPITAL, position(on_hand=-1))
    return orjson.dumps(event), HOSPITAL.encode()


def _unknown_field() -> tuple[bytes, bytes]:
    event = stock(HOSPITAL)
    event["price_eur"] = 12.5
    return orjson.dumps(event), HOSPITAL.encode()


def _naive_time() -> tuple[bytes, bytes]:
    event = stock(HOSPITAL)
    event["occurred_at"] = "2026-03-02T12:00:00"
    return orjson.dumps(event), HOSPITAL.encode()


def _too_large() -> tuple[bytes, bytes]:
    event = stock(HOSPITAL)
    raw = orjson.dumps(event)
    return raw[:-1] + b" " * (MAX_MESSAGE_BYTES - len(raw) + 1) + b"}", HOSPITAL.encode()


CASES = {
    # name: (value, key, reason prefix, fragment expected in reason/errors)
    "invalid_json": (
        lambda: (b'{"type": "StockReported",', HOSPITAL.encode()),
        "invalid_json",
        "not valid JSON",
    ),
    "not_utf8": (lambda: (b"\xff\xfe\x00garbage", HOSPITAL.encode()), "invalid_json", "JSON"),
    "negative_quantity": (_negative, "invalid_event", "positions.0.on_hand"),
    "unknown_field": (_unknown_field, "invalid_event", "price_eur"),
    "naive_timestamp": (_naive_time, "invalid_event", "occurred_at"),
    "unknown_type": (
        lambda: (b'{"type": "StockSold", "event_id": "ev-12345678"}', HOSPITAL.encode()),
        "invalid_event",
        "type",
    ),
    "empty_value": (lambda: (b"", HOSPITAL.encode()), "empty_message", "no value"),
    "none_value": (lambda: (None, HOSPITAL.encode()), "empty_message", "no value"),
    "too_large": (_too_large, "too_large", str(MAX_MESSAGE_BYTES)),
    "key_mismatch": (
        lambda: (orjson.dumps(stock(HOSPITAL)), FACTORY.encode()),
        "key_mismatch",
        FACTORY,
    ),
    "key_missing": (lambda: (orjson.dumps(stock(HOSPITAL)), None), "key_mismatch", "None"),
    "unknown_partner": (
        lambda: (orjson.dumps(stock("fremd-gmbh", position("x1"))), b"fremd-gmbh"),
        "unknown_partner",
        "fremd-gmbh",
    ),
    "unknown_site_stock": (
        lambda: (
            orjson.dumps(stock(HOSPITAL, position("lager-1"), position("lager-9"))),
            HOSPITAL.encode(),
        ),
        "unknown_site",
        "lager-9",
    ),
    "unknown_site_need": (
        lambda: (orjson.dumps(need(HOSPITAL, site="lager-9")), HOSPITAL.encode()),
        "unknown_site",
        "lager-9",
    ),
    "unknown_site_offer": (
        lambda: (orjson.dumps(offer(FACTORY, site="lager-1")), FACTORY.encode()),
        "unknown_site",
        "lager-1",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_message_becomes_dead_letter_and_next_is_applied(name: str) -> None:
    make, reason, fragment = CASES[name]
    value, key = make()
    processor = LedgerProcessor(make_alliance(), service="ledger-test")
    feed = Feed(partition=3)
    feed.offset = 1000
    bad = feed.raw(value, key)
    good = valid_event()
    out = processor.process([bad, feed(good)], NOW)

    [letter] = dead_letters(out)
    assert out.dead_letters[0][0] == TOPIC.encode()
    assert letter.source_topic == TOPIC
    assert (letter.source_partition, letter.source_offset) == (3, 1000)
    assert letter.source_key == (key.decode() if key is not None else None)
    kept = b"" if len(value or b"") > MAX_DEAD_LETTER_ORIGINAL_BYTES else (value or b"")
    assert base64.b64decode(letter.original_base64) == kept
    assert letter.reason.startswith(reason + ": ")
    assert fragment in letter.reason + " ".join(letter.errors)
    assert letter.service == "ledger-test"
    assert letter.received_at == datetime.fromtimestamp(NOW, UTC)
    assert out.rejected == {reason: 1}

    # nothing of the bad message reached the state, the good one did
    state = processor.state(3)
    assert list(state.positions) == [(HOSPITAL, "lager-2", "VALID-1")]
    assert state.positions[(HOSPITAL, "lager-2", "VALID-1")].on_hand == 42
    assert out.ingested == {"StockReported": 1}
    assert orjson.loads(out.changelog[3][-1])["ids"] == [event_key(HOSPITAL, good["event_id"])]


def test_a_large_original_is_named_not_kept_so_the_letter_fits_the_broker() -> None:
    """A schema-invalid event of 800 KB: its letter would exceed Apache Kafka's default
    1 MiB message limit with the original in base64, failing the batch on every retry."""
    event = stock(HOSPITAL, position(on_hand=-1))
    event["comment"] = "x" * (800 * 1024)
    value = orjson.dumps(event)
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    out = processor.process([feed.raw(value, HOSPITAL.encode()), feed(valid_event())], NOW)
    [letter] = dead_letters(out)
    assert len(out.dead_letters[0][1]) < 1024 * 1024
    assert letter.original_base64 == ""
    assert hashlib.sha256(value).hexdigest() in " ".join(letter.errors)
    assert f"({len(value)} bytes" in " ".join(letter.errors)
    assert letter.reason.startswith("invalid_event: ")
    assert out.ingested == {"StockReported": 1}
    # just under the limit the original is kept
    small = orjson.dumps({**event, "comment": "x" * (MAX_DEAD_LETTER_ORIGINAL_BYTES - 1024)})
    [kept] = dead_letters(processor.process([feed.raw(small, HOSPITAL.encode())], NOW))
    assert base64.b64decode(kept.original_base64) == small


def test_schema_violation_lists_field_errors() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    event = stock(HOSPITAL, position(on_hand=-1, safety=-2))
    out = processor.process([feed(event)], NOW)
    [letter] = dead_letters(out)
    assert any(e.startswith("positions.0.on_hand:") for e in letter.errors)
    assert any(e.startswith("positions.0.safety_stock:") for e in letter.errors)


def test_without_alliance_any_partner_and_site_is_accepted() -> None:
    processor, feed = LedgerProcessor(), Feed()
    out = processor.process([feed(stock("fremd-gmbh", position("irgendwo")))], NOW)
    assert out.dead_letters == []
    assert ("fremd-gmbh", "irgendwo", "NACL-500ML") in processor.state(0).positions


def test_many_bad_messages_interleaved() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    batch: list[Inbound] = []
    good_ids = []
    for index, name in enumerate(CASES):
        value, key = CASES[name][0]()
        batch.append(feed.raw(value, key))
        good = stock(HOSPITAL, position("lager-2", f"MAT-{index}", on_hand=index))
        good_ids.append(event_key(HOSPITAL, good["event_id"]))
        batch.append(feed(good))
    out = processor.process(batch, NOW)
    letters = dead_letters(out)
    assert [letter.source_offset for letter in letters] == list(range(0, 2 * len(CASES), 2))
    assert sum(out.rejected.values()) == len(CASES)
    assert orjson.loads(out.changelog[0][-1])["ids"] == good_ids
    assert len(processor.state(0).positions) == len(CASES)


def test_order_acknowledgement_is_passed_through_not_stored() -> None:
    processor, feed = LedgerProcessor(make_alliance()), Feed()
    ack = {
        "type": "OrderAcknowledged",
        "event_id": "ev-ack-0001",
        "partner_id": HOSPITAL,
        "occurred_at": "2026-03-02T12:00:00+00:00",
        "order_id": "order-0001",
        "accepted": True,
    }
    out = processor.process([feed(ack)], NOW)
    assert [a.order_id for a in out.acknowledgements] == ["order-0001"]
    assert out.ingested == {"OrderAcknowledged": 1}
    assert out.changelog == {}
