"""The partner bridge's decisions, without Kafka: where one consumed record goes.

Inbound (``verbund.partner.<id>.events`` -> ``verbund.partner.events``): the record is
forwarded byte for byte, keyed by the topic's owner, when it is a JSON object whose
``partner_id`` is the owner and whose ``type`` is a partner event type. Everything else is a
:class:`Rejection` that the adapter writes to the dead-letter topic. That is the whole check:
full schema validation stays in the ledger, which dead-letters what it cannot read.

Outbound (``verbund.partner.orders`` -> ``verbund.partner.<key>.orders``): the record key
names the recipient; it must be a member of the alliance and the record's ``recipient``
must be that key (a mis-keyed order must not reach another partner).

JSON is read with pydantic's parser, the one the ledger validates with, so both agree on
what a record says (duplicate keys: the last one wins in both).
"""

from __future__ import annotations

import base64
import typing
from collections.abc import Container
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic_core

from schemas import events
from schemas.alerts import DeadLetter
from services.common.topics import (
    DEAD_LETTERS,
    PARTNER_EVENTS,
    InvalidPartnerId,
    check_partner_id,
    partner_orders_topic,
)

SERVICE = "bridge"
MAX_REASON_CHARS = 2000

# Rejection reasons (the ``reason`` label of the dead-letter metric; the dead letter's
# ``reason`` text starts with one of them).
EMPTY_MESSAGE = "empty_message"
TOO_LARGE = "too_large"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_PARTNER_ID = "missing_partner_id"
PARTNER_MISMATCH = "partner_mismatch"
MISSING_TYPE = "missing_type"
TYPE_NOT_ALLOWED = "type_not_allowed"
INVALID_KEY = "invalid_key"
UNKNOWN_RECIPIENT = "unknown_recipient"
RECIPIENT_MISMATCH = "recipient_mismatch"
FORWARD_FAILED = "forward_failed"  # the broker refused the forward for good
NOT_A_PARTNER_TOPIC = "not_a_partner_topic"  # a record from a topic the bridge does not serve
BRIDGE_ERROR = "bridge_error"  # routing raised (a bug): dead-lettered, never a crash
INBOUND_REASONS = (
    EMPTY_MESSAGE,
    TOO_LARGE,
    INVALID_JSON,
    NOT_AN_OBJECT,
    MISSING_PARTNER_ID,
    PARTNER_MISMATCH,
    MISSING_TYPE,
    TYPE_NOT_ALLOWED,
)
OUTBOUND_REASONS = (
    EMPTY_MESSAGE,
    INVALID_KEY,
    UNKNOWN_RECIPIENT,
    INVALID_JSON,
    NOT_AN_OBJECT,
    RECIPIENT_MISMATCH,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """A record to produce."""

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is not forwarded: ``reason`` (one of the constants above) and a detail."""

    reason: str
    detail: str

    @property
    def text(self) -> str:
        return f"{self.reason}: {self.detail}"[:MAX_REASON_CHARS]


Route = Forward | Rejection


def partner_event_types() -> frozenset[str]:
    """The ``type`` values of the partner event union the ledger parses
    (:data:`schemas.events.PartnerEvent`), read from the schema module, so a partner event
    added there is forwarded without a change here."""
    union = typing.get_args(events.PartnerEvent)[0]  # Annotated[Union[...], Field(...)]
    members = typing.get_args(union) or (union,)
    names: set[str] = set()
    for model in members:
        names.update(typing.get_args(model.model_fields["type"].annotation))
    return frozenset(names)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_object(value: bytes) -> dict[str, Any] | Rejection:
    try:
        data = pydantic_core.from_json(value)
    except ValueError as exc:
        return Rejection(INVALID_JSON, f"value is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return Rejection(NOT_AN_OBJECT, f"value is JSON {type(data).__name__}, not an object")
    return data


def route_inbound(
    record: Record, owner: str, allowed_types: AbstractSet[str], max_bytes: int
) -> Route:
    """A record from ``owner``'s own events topic: forward it, or say why not."""
    value = record.value
    if not value:
        return Rejection(EMPTY_MESSAGE, "record has no value")
    if len(value) > max_bytes:
        return Rejection(TOO_LARGE, f"value is {len(value)} bytes, limit is {max_bytes}")
    data = _json_object(value)
    if isinstance(data, Rejection):
        return data
    partner_id = data.get("partner_id")
    if not isinstance(partner_id, str) or not partner_id:
        return Rejection(MISSING_PARTNER_ID, "event has no partner_id string")
    if partner_id != owner:
        return Rejection(
            PARTNER_MISMATCH,
            f"event on {record.topic} (partner {owner!r}) claims partner_id {_short(partner_id)}",
        )
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        return Rejection(MISSING_TYPE, "event has no type string")
    if kind not in allowed_types:
        return Rejection(
            TYPE_NOT_ALLOWED,
            f"type {_short(kind)} is not a partner event; partners may send "
            + ", ".join(sorted(allowed_types)),
        )
    return Forward(PARTNER_EVENTS.name, owner.encode(), value, record.timestamp_ms)


def route_outbound(record: Record, members: Container[str]) -> Route:
    """A record from ``verbund.partner.orders``: copy it to the recipient's own orders topic,
    or say why not."""
    if record.key is None:
        return Rejection(INVALID_KEY, "record has no key (the key names the recipient)")
    try:
        recipient = check_partner_id(record.key.decode("utf-8"))
    except (UnicodeDecodeError, InvalidPartnerId):
        return Rejection(INVALID_KEY, f"record key {_short(record.key)} is not a partner id")
    if recipient not in members:
        return Rejection(UNKNOWN_RECIPIENT, f"{recipient!r} is not a partner of the alliance")
    value = record.value
    if not value:
        return Rejection(EMPTY_MESSAGE, "record has no value")
    data = _json_object(value)
    if isinstance(data, Rejection):
        return data
    if data.get("recipient") != recipient:
        return Rejection(
            RECIPIENT_MISMATCH,
            f"record keyed {recipient!r} names recipient {_short(data.get('recipient'))}",
        )
    return Forward(partner_orders_topic(recipient), record.key, value, record.timestamp_ms)


def dead_letter(record: Record, rejection: Rejection, now: float) -> Forward:
    """The dead letter of a rejected record: original bytes, reason, source coordinates
    (the ledger's contract, keyed by the source topic)."""
    letter = DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        reason=rejection.text,
        errors=[],
        original_base64=base64.b64encode(record.value or b"").decode("ascii"),
        service=SERVICE,
        received_at=datetime.fromtimestamp(now, UTC),
    )
    return Forward(DEAD_LETTERS.name, record.topic.encode(), letter.model_dump_json().encode())
