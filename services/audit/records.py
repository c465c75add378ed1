"""What gets recorded from a Kafka record: kind, decoded payload, key, time (pure)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.audit.chain import Recorded, sha256_hex
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


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity (they have no canonical form)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise NotJson(str(exc)) from exc


def iso_time(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")


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


def to_recorded(record: SourceRecord) -> Recorded | None:
    """What the audit records for this Kafka record, or None when it is not audited.

    Everything on the audited coordinator topics is recorded; messages that are not
    valid JSON are recorded as kind ``unparseable`` with their bytes in base64. On the
    partner event topic only acknowledgements are recorded (the rest is high volume
    and goes through the ledger, which dead-letters what it cannot read).
    """
    raw = record.value if record.value is not None else b""
    error: str | None = None
    try:
        payload: Any = decode_json(raw)
    except NotJson as exc:
        payload, error = None, str(exc) or "not JSON"
    if record.topic == PARTNER_EVENTS.name and (
        error is not None or kind_of(record.topic, payload) != AUDITED_PARTNER_EVENT
    ):
        return None
    if error is not None:
        kind = UNPARSEABLE
        payload = {
            "base64": base64.b64encode(raw).decode("ascii"),
            "error": error[:200] if record.value is not None else "empty (null) value",
        }
    else:
        kind = kind_of(record.topic, payload)
    return Recorded(
        at=iso_time(record.timestamp_ms),
        kind=kind,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        key=decode_key(record.key),
        payload_sha256=sha256_hex(raw),
        payload=payload,
    )
