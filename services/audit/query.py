"""Filters for ``verbund audit show`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.audit.chain import Entry
from services.common.topics import COMMANDS, DECISIONS, PARTNER_ORDERS, RUNS

# Payload fields that name a partner (a value or a list of values).
PARTNER_FIELDS = frozenset(
    {
        "partner_id",
        "from_partner",
        "to_partner",
        "provider_partner",
        "recipient",
        "partners",
        "participants",
        "partner",
    }
)
RUN_FIELDS = frozenset({"run_id"})
# Topics keyed by run id: the key names the run even when the payload does not (a trigger).
RUN_KEYED_TOPICS = frozenset({COMMANDS.name, RUNS.name, DECISIONS.name})


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _names(value: Any, fields: frozenset[str], wanted: str, depth: int = 0) -> bool:
    """Does ``wanted`` appear under one of ``fields`` anywhere in ``value``?"""
    if depth > 32:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            if key in fields and (item == wanted or (isinstance(item, list) and wanted in item)):
                return True
            if isinstance(item, dict | list) and _names(item, fields, wanted, depth + 1):
                return True
    elif isinstance(value, list):
        return any(_names(item, fields, wanted, depth + 1) for item in value)
    return False


@dataclass(frozen=True)
class EntryFilter:
    run: str | None = None
    partner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None

    def matches(self, entry: Entry) -> bool:
        if self.kind is not None and entry.get("kind") != self.kind:
            return False
        if self.since is not None or self.until is not None:
            try:
                at = parse_time(str(entry.get("at")))
            except ValueError:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at > self.until:
                return False
        payload = entry.get("payload")
        if self.run is not None:
            keyed = entry.get("source_topic") in RUN_KEYED_TOPICS and entry.get("key") == self.run
            if not keyed and not _names(payload, RUN_FIELDS, self.run):
                return False
        if self.partner is not None:
            keyed = (
                entry.get("source_topic") == PARTNER_ORDERS.name
                and entry.get("key") == self.partner
            )
            if not keyed and not _names(payload, PARTNER_FIELDS, self.partner):
                return False
        return True


def select(entries: Iterable[Entry], where: EntryFilter) -> Iterator[Entry]:
    return (entry for entry in entries if where.matches(entry))


def summary(entry: Entry, width: int = 70) -> str:
    """A short readable description of an entry's payload for the table view."""
    payload = entry.get("payload")
    if not isinstance(payload, dict):
        text = repr(payload)
    elif entry.get("kind") == "unparseable":
        text = f"{len(str(payload.get('base64', '')))} base64 chars: {payload.get('error', '')}"
    else:
        keys = (
            "run_id",
            "protocol_id",
            "order_id",
            "principal",
            "recipient",
            "partner_id",
            "state",
            "status",
            "action",
            "reason",
            "accepted",
        )
        parts = [f"{k}={payload[k]}" for k in keys if k in payload and payload[k] not in ("", None)]
        text = " ".join(parts) or ",".join(sorted(payload))
    return text if len(text) <= width else text[: width - 1] + "…"
