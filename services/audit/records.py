"""What gets recorded from a Kafka record: kind, decoded payload, key, time (pure)."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.audit.chain import Recorded, canonical, sha256_hex
from services.common.text import bounded_text
from services.common.topics import (
    COMMANDS,
    DECISIONS,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    PROTOCOLS,
    QUOTES,
    RUNS,
)

UNPARSEABLE = "unparseable"
AUDITED_PARTNER_EVENT = "OrderAcknowledged"

# Kind used when a valid JSON message carries no usable ``type`` field.
DEFAULT_KINDS: dict[str, str] = {
    COMMANDS.name: "command",
    RUNS.name: "run",
    DECISIONS.name: "decision",
    PARTNER_ORDERS.name: "order",
    PROTOCOLS.name: "protocol_version",
    QUOTES.name: "supplier_quote",
    PARTNER_EVENTS.name: AUDITED_PARTNER_EVENT,
}
AUDITED_TOPICS: tuple[str, ...] = tuple(DEFAULT_KINDS)

_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_ERROR_CHARS = 200  # of what the JSON decoder says
MAX_REASON_CHARS = 500  # of an unparseable entry's whole ``error``

# Record timestamps an entry's ``at`` can show (ISO 8601 has years 1-9999); Kafka allows
# any 64-bit value, and the bridge copies a partner's through.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TIMESTAMP_MS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
MAX_TIMESTAMP_MS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class SourceRecord:
    """A consumed Kafka record, as far as the audit cares."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise NotJson(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise NotJson(f"number {shown} is out of range (not a finite number)")
    return value


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, finite numbers only (NaN, Infinity and numbers too large for a
    float such as ``1e999`` have no canonical form), and a value that canonical JSON can
    write (no lone surrogates, not nested too deeply). Raises :class:`NotJson` saying why."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except NotJson:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, ...
        raise NotJson(str(exc) or type(exc).__name__) from exc
    try:
        canonical(value)
    except (ValueError, RecursionError) as exc:  # e.g. UnicodeEncodeError for "\ud800"
        raise NotJson(f"cannot be written as canonical JSON: {exc}") from exc
    return value


def record_time(timestamp_ms: int) -> tuple[str, str | None]:
    """An entry's ``at`` for a record timestamp, and why it is not exactly that timestamp
    (None when it is). A timestamp outside years 1-9999 gives the nearest time there is."""
    clamped = min(max(timestamp_ms, MIN_TIMESTAMP_MS), MAX_TIMESTAMP_MS)
    at = (EPOCH + timedelta(milliseconds=clamped)).isoformat(timespec="milliseconds")
    if clamped == timestamp_ms:
        return at, None
    return at, (
        f"record timestamp {timestamp_ms} ms is outside the years 1-9999 "
        f"(recorded at {at}, the nearest time there is)"
    )


def iso_time(timestamp_ms: int) -> str:
    return record_time(timestamp_ms)[0]


def decode_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode("ascii")


def kind_of(topic: str, payload: Any) -> str:
    tag = payload.get("type") if isinstance(payload, dict) else None
    if isinstance(tag, str) and _KIND.match(tag):
        return tag
    return DEFAULT_KINDS.get(topic, "event")


def _claims_acknowledgement(raw: bytes) -> bool:
    """Whether a partner event the strict decoder refused still reads (leniently: NaN and
    Infinity allowed) as an acknowledgement, which the audit records."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return kind_of(PARTNER_EVENTS.name, value) == AUDITED_PARTNER_EVENT


def unrecordable(record: SourceRecord, error: str) -> Recorded:
    """The ``unparseable`` entry of a record that cannot be recorded as it is: its bytes in
    base64 (checked against ``payload_sha256`` by verify) and why."""
    raw = record.value if record.value is not None else b""
    at, _ = record_time(record.timestamp_ms)
    return Recorded(
        at=at,
        kind=UNPARSEABLE,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=decode_key(record.key),
        payload_sha256=sha256_hex(raw),
        payload={
            "base64": base64.b64encode(raw).decode("ascii"),
            "error": bounded_text(error, MAX_REASON_CHARS),
        },
    )


def to_recorded(record: SourceRecord) -> Recorded | None:
    """What the audit records for this Kafka record, or None when it is not audited.

    Everything on the audited coordinator topics is recorded; messages that are not
    valid JSON (or carry numbers that are not finite, or cannot be written as canonical
    JSON) are recorded as kind ``unparseable`` with their bytes in base64 and the reason, and
    so are records whose timestamp lies outside the years 1-9999 (``at`` is then the nearest
    time that is). On the partner event topic only acknowledgements are recorded (the rest
    is high volume and goes through the ledger, which dead-letters what it cannot read); an
    acknowledgement that is not strict JSON is recorded as ``unparseable``.
    """
    raw = record.value if record.value is not None else b""
    error: str | None = None
    try:
        payload: Any = decode_json(raw)
    except NotJson as exc:
        payload, error = None, bounded_text(str(exc) or "not JSON", MAX_ERROR_CHARS)
    if record.value is None:
        error = "empty (null) value"
    if record.topic == PARTNER_EVENTS.name:
        if error is None and kind_of(record.topic, payload) != AUDITED_PARTNER_EVENT:
            return None
        if error is not None and not _claims_acknowledgement(raw):
            return None
    at, time_error = record_time(record.timestamp_ms)
    if error is not None or time_error is not None:
        return unrecordable(record, "; ".join(e for e in (error, time_error) if e is not None))
    return Recorded(
        at=at,
        kind=kind_of(record.topic, payload),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=decode_key(record.key),
        payload_sha256=sha256_hex(raw),
        payload=payload,
    )
