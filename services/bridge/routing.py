"""The partner bridge's decisions, without Kafka: where one consumed record goes.

Inbound (``verbund.partner.<id>.events`` -> ``verbund.partner.events``): the record is
forwarded byte for byte, keyed by the topic's owner, when it is a JSON object (finite
numbers only) whose ``partner_id`` is the owner and whose ``type`` is a partner event type,
and when its Kafka timestamp, which is copied through, lies in the years the contracts accept
(2000-2199). Everything else is a :class:`Rejection` that the adapter writes to the
dead-letter topic. That is the whole check: full schema validation stays in the ledger,
which dead-letters what it cannot read.

Outbound (``verbund.partner.orders`` -> ``verbund.partner.<key>.orders``): the record key
names the recipient; it must be a member of the alliance and the record's ``recipient``
must be that key (a mis-keyed order must not reach another partner).

JSON is read with pydantic's parser, the one the ledger validates with, so both agree on
what a record says (duplicate keys: the last one wins in both). Numbers that are not finite
(``NaN``, ``Infinity``, or too large for a float such as ``1e999``) make a record invalid JSON
in both directions: no canonical JSON writer (the audit's) can write them.
"""

from __future__ import annotations

import base64
import math
import typing
from collections.abc import Container
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pydantic_core

from schemas import events
from schemas.alerts import DeadLetter
from schemas.common import EARLIEST, LATEST
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
# An inbound record whose Kafka timestamp lies outside the years 2000-2199 (what the contracts
# accept; the bridge copies the timestamp through, and e.g. year 10000 breaks every reader
# that turns it into a date). A reason about the record, not its value: not in
# ``INBOUND_REASONS``, which lists what ``route_inbound`` says about a value.
INVALID_TIMESTAMP = "invalid_timestamp"
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

NO_TIMESTAMP = -1  # Kafka's "no timestamp"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: Record timestamps the bridge forwards: the years the contracts accept (schemas.common).
EARLIEST_TIMESTAMP_MS = (datetime.combine(EARLIEST, time(), UTC) - _EPOCH) // _MS
LATEST_TIMESTAMP_MS = (
    datetime.combine(LATEST + timedelta(days=1), time(), UTC) - _EPOCH
) // _MS - 1


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


def _non_finite(data: Any) -> str | None:
    """Where the first number that is not finite lies in parsed JSON (a path like
    ``$.lines[2].quantity``), or None when every number is finite."""
    stack: list[tuple[str, Any]] = [("$", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return path
        elif isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return None


def _json_object(value: bytes) -> dict[str, Any] | Rejection:
    try:
        data = pydantic_core.from_json(value, allow_inf_nan=False)
    except ValueError as exc:
        return Rejection(INVALID_JSON, f"value is not valid JSON ({exc})")
    where = _non_finite(data)
    if where is not None:
        return Rejection(
            INVALID_JSON,
            f"value is not valid JSON (the number at {_short(where)} is out of range: "
            "not a finite number)",
        )
    if not isinstance(data, dict):
        return Rejection(NOT_AN_OBJECT, f"value is JSON {type(data).__name__}, not an object")
    return data


def _timestamp_problem(timestamp_ms: int | None) -> Rejection | None:
    """Why a record's Kafka timestamp must not be copied to a forward (None: it may)."""
    if timestamp_ms is None or timestamp_ms == NO_TIMESTAMP:
        return None
    if EARLIEST_TIMESTAMP_MS <= timestamp_ms <= LATEST_TIMESTAMP_MS:
        return None
    return Rejection(
        INVALID_TIMESTAMP,
        f"record timestamp {timestamp_ms} ms is outside the years "
        f"{EARLIEST.year}-{LATEST.year} (a clock fault or a forged record)",
    )


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
    bad_time = _timestamp_problem(record.timestamp_ms)
    if bad_time is not None:
        return bad_time
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


def dead_letter(
    record: Record, rejection: Rejection, now: float, keep_original: bool = True
) -> Forward:
    """The dead letter of a rejected record: original bytes, reason, source coordinates
    (the ledger's contract, keyed by the source topic). ``now`` is clamped to the years the
    contract accepts, so a host clock off by decades cannot make dead-lettering fail.
    ``keep_original=False``: without the original bytes (for a letter the broker refused
    for its size; ``errors`` says so)."""
    now = min(max(now, EARLIEST_TIMESTAMP_MS / 1000), LATEST_TIMESTAMP_MS / 1000)
    original = record.value or b""
    omitted: list[str] = []
    if not keep_original:
        omitted.append(
            f"original value ({len(original)} bytes) omitted: the dead letter with it was "
            "refused by the broker (see the bridge log)"
        )
        original = b""
    letter = DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        reason=rejection.text,
        errors=omitted,
        original_base64=base64.b64encode(original).decode("ascii"),
        service=SERVICE,
        received_at=datetime.fromtimestamp(now, UTC),
    )
    return Forward(DEAD_LETTERS.name, record.topic.encode(), letter.model_dump_json().encode())
