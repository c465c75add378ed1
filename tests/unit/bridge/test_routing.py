"""The partner bridge's routing without Kafka: what is forwarded, and every dead-letter reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from schemas.alerts import DeadLetter
from schemas.events import PARTNER_EVENT_TYPES
from services.bridge import routing
from services.bridge.routing import (
    Forward,
    Record,
    Rejection,
    dead_letter,
    partner_event_types,
    route_inbound,
    route_outbound,
)
from services.bridge.settings import DEFAULT_MAX_MESSAGE_BYTES
from services.common.topics import DEAD_LETTERS, PARTNER_EVENTS, PARTNER_ORDERS

OWNER = "klinik-a"
OTHER = "klinik-b"
EVENTS_TOPIC = f"verbund.partner.{OWNER}.events"
MAX = 10_000
TYPES = partner_event_types()
MEMBERS = frozenset({OWNER, OTHER})


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "NeedReported",
        "schema_version": 1,
        "event_id": "evt-00000001",
        "partner_id": OWNER,
        "occurred_at": "2026-11-22T08:00:00+01:00",
        "need_id": "n-1",
        "site_id": "lager-1",
        "material_id": "NACL-500ML",
        "unit": "pcs",
        "quantity": 10,
        "needed_by": "2026-11-30",
        "criticality": "hospital",
    }
    event.update(overrides)
    return event


def _inbound(value: bytes | None, key: bytes | None = b"whatever") -> Record:
    return Record(EVENTS_TOPIC, 0, 41, key, value, 1_700_000_000_000)


def _order(recipient: str = OWNER, **overrides: Any) -> bytes:
    order = {"type": "OrderIssued", "order_id": "run-1:o-1", "recipient": recipient}
    order.update(overrides)
    return json.dumps(order).encode()


def _outbound(value: bytes | None, key: bytes | None = OWNER.encode()) -> Record:
    return Record(PARTNER_ORDERS.name, 3, 7, key, value, 1_700_000_000_000)


def _reason(route: Forward | Rejection) -> str:
    assert isinstance(route, Rejection), route
    return route.reason


# --- allowed types ----------------------------------------------------------------------------


def test_allowed_types_are_the_partner_events_of_the_schema_module() -> None:
    declared = {cls.model_fields["type"].default for cls in PARTNER_EVENT_TYPES}
    assert partner_event_types() == declared
    assert {"StockReported", "NeedReported", "CapacityOffered", "OrderAcknowledged"} <= TYPES
    assert "PartnerRemoved" not in TYPES


def test_the_size_limit_is_the_ledgers() -> None:
    from services.ledger.processor import MAX_MESSAGE_BYTES

    assert DEFAULT_MAX_MESSAGE_BYTES == MAX_MESSAGE_BYTES


# --- inbound ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_every_partner_event_type_of_the_owner_is_forwarded_byte_for_byte(kind: str) -> None:
    value = json.dumps(_event(type=kind)).encode() + b"  \n"  # not re-serialized
    route = route_inbound(_inbound(value, key=b"someone-else"), OWNER, TYPES, MAX)
    assert route == Forward(PARTNER_EVENTS.name, OWNER.encode(), value, 1_700_000_000_000)


def test_full_schema_validation_is_left_to_the_ledger() -> None:
    value = json.dumps(_event(quantity=-5, extra="x")).encode()
    assert isinstance(route_inbound(_inbound(value), OWNER, TYPES, MAX), Forward)


INBOUND_CASES: list[tuple[bytes | None, str, str]] = [
    (None, routing.EMPTY_MESSAGE, "no value"),
    (b"", routing.EMPTY_MESSAGE, "no value"),
    (b"x" * (MAX + 1), routing.TOO_LARGE, f"{MAX + 1} bytes, limit is {MAX}"),
    (b"{not json", routing.INVALID_JSON, "not valid JSON"),
    (b"\xff\xfe", routing.INVALID_JSON, "not valid JSON"),
    (b"[" * 5_000, routing.INVALID_JSON, "recursion limit"),
    (b'{"partner_id": "\\ud800"}', routing.INVALID_JSON, "not valid JSON"),
    (b'[{"partner_id": "klinik-a"}]', routing.NOT_AN_OBJECT, "list"),
    (b'"klinik-a"', routing.NOT_AN_OBJECT, "str"),
    (json.dumps(_event(partner_id=None)).encode(), routing.MISSING_PARTNER_ID, "partner_id"),
    (json.dumps(_event(partner_id=7)).encode(), routing.MISSING_PARTNER_ID, "partner_id"),
    (json.dumps(_event(partner_id=OTHER)).encode(), routing.PARTNER_MISMATCH, OTHER),
    (json.dumps(_event(type=None)).encode(), routing.MISSING_TYPE, "type"),
    (json.dumps(_event(type="PartnerRemoved")).encode(), routing.TYPE_NOT_ALLOWED, "Partner"),
    (json.dumps(_event(type="ShortageDetected")).encode(), routing.TYPE_NOT_ALLOWED, "not a"),
    (json.dumps(_event(type="stockreported")).encode(), routing.TYPE_NOT_ALLOWED, "not a"),
]


@pytest.mark.parametrize(("value", "reason", "detail"), INBOUND_CASES)
def test_inbound_rejections(value: bytes | None, reason: str, detail: str) -> None:
    route = route_inbound(_inbound(value), OWNER, TYPES, MAX)
    assert _reason(route) == reason
    assert isinstance(route, Rejection) and detail in route.detail
    assert route.text.startswith(f"{reason}: ")


def test_every_inbound_reason_has_a_case() -> None:
    assert {reason for _, reason, _ in INBOUND_CASES} == set(routing.INBOUND_REASONS)


def test_a_forged_partner_removal_is_rejected_whoever_it_names() -> None:
    removal = {
        "type": "PartnerRemoved",
        "command_id": "cmd-0123456789ab",
        "partner_id": OWNER,
        "requested_by": "mallory",
        "reason": "",
        "at": "2026-11-22T08:00:00+01:00",
    }
    route = route_inbound(_inbound(json.dumps(removal).encode()), OWNER, TYPES, MAX)
    assert _reason(route) == routing.TYPE_NOT_ALLOWED
    removal["partner_id"] = OTHER
    assert _reason(route_inbound(_inbound(json.dumps(removal).encode()), OWNER, TYPES, MAX)) in {
        routing.PARTNER_MISMATCH,
        routing.TYPE_NOT_ALLOWED,
    }


def test_duplicate_keys_are_read_as_the_ledger_reads_them() -> None:
    # the last value wins, in the bridge as in the ledger's pydantic parser
    forged = json.dumps(_event())[:-1] + f', "partner_id": "{OTHER}"}}'
    assert _reason(route_inbound(_inbound(forged.encode()), OWNER, TYPES, MAX)) == (
        routing.PARTNER_MISMATCH
    )
    hidden = json.dumps(_event(partner_id=OTHER))[:-1] + f', "partner_id": "{OWNER}"}}'
    route = route_inbound(_inbound(hidden.encode()), OWNER, TYPES, MAX)
    assert isinstance(route, Forward)
    from schemas.events import parse_partner_event

    assert parse_partner_event(route.value).partner_id == OWNER


def test_a_huge_claimed_type_is_shortened_in_the_reason() -> None:
    route = route_inbound(_inbound(json.dumps(_event(type="X" * 5000)).encode()), OWNER, TYPES, MAX)
    assert isinstance(route, Rejection) and len(route.detail) < 600


# --- outbound ---------------------------------------------------------------------------------


def test_an_order_is_copied_to_its_recipients_topic() -> None:
    value = _order()
    route = route_outbound(_outbound(value), MEMBERS)
    assert route == Forward(
        f"verbund.partner.{OWNER}.orders", OWNER.encode(), value, 1_700_000_000_000
    )
    other = route_outbound(_outbound(_order(OTHER), key=OTHER.encode()), MEMBERS)
    assert isinstance(other, Forward) and other.topic == f"verbund.partner.{OTHER}.orders"


OUTBOUND_CASES: list[tuple[bytes | None, bytes | None, str]] = [
    (None, _order(), routing.INVALID_KEY),
    (b"", _order(), routing.INVALID_KEY),
    (b"Klinik A", _order(), routing.INVALID_KEY),
    (b"klinik-a.events", _order(), routing.INVALID_KEY),
    (b"\xff", _order(), routing.INVALID_KEY),
    (b"klinik-z", _order("klinik-z"), routing.UNKNOWN_RECIPIENT),
    (OWNER.encode(), None, routing.EMPTY_MESSAGE),
    (OWNER.encode(), b"{", routing.INVALID_JSON),
    (OWNER.encode(), b"[1]", routing.NOT_AN_OBJECT),
    (OWNER.encode(), _order(OTHER), routing.RECIPIENT_MISMATCH),
    (OWNER.encode(), json.dumps({"type": "OrderIssued"}).encode(), routing.RECIPIENT_MISMATCH),
]


@pytest.mark.parametrize(("key", "value", "reason"), OUTBOUND_CASES)
def test_outbound_rejections(key: bytes | None, value: bytes | None, reason: str) -> None:
    assert _reason(route_outbound(_outbound(value, key=key), MEMBERS)) == reason


def test_every_outbound_reason_has_a_case() -> None:
    assert {reason for _, _, reason in OUTBOUND_CASES} == set(routing.OUTBOUND_REASONS)


# --- dead letters -----------------------------------------------------------------------------


def test_dead_letter_keeps_original_bytes_reason_and_source() -> None:
    value = json.dumps(_event(partner_id=OTHER)).encode()
    record = _inbound(value, key=b"k")
    rejection = route_inbound(record, OWNER, TYPES, MAX)
    assert isinstance(rejection, Rejection)
    letter = dead_letter(record, rejection, now=1_700_000_000.0)
    assert letter.topic == DEAD_LETTERS.name and letter.key == EVENTS_TOPIC.encode()
    parsed = DeadLetter.model_validate_json(letter.value)
    assert base64.b64decode(parsed.original_base64) == value
    assert parsed.reason.startswith("partner_mismatch: ") and OTHER in parsed.reason
    assert (parsed.source_topic, parsed.source_partition, parsed.source_offset) == (
        EVENTS_TOPIC,
        0,
        41,
    )
    assert parsed.source_key == "k" and parsed.service == "bridge"


def test_dead_letter_of_a_record_without_key_or_value() -> None:
    record = _outbound(None, key=None)
    letter = dead_letter(record, Rejection(routing.INVALID_KEY, "no key"), now=0.0)
    parsed = DeadLetter.model_validate_json(letter.value)
    assert parsed.source_key is None and parsed.original_base64 == ""
    assert parsed.reason == "invalid_key: no key"


def test_dead_letter_reason_is_bounded() -> None:
    rejection = Rejection(routing.INVALID_JSON, "x" * 10_000)
    assert len(rejection.text) == routing.MAX_REASON_CHARS
