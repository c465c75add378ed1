"""Building audit logs for tests."""

from __future__ import annotations

import json
from typing import Any

from services.audit.batch import record_batch
from services.audit.chain import ChainHead, Entry, encode_line, entry_hash
from services.audit.records import SourceRecord
from services.common.topics import COMMANDS, DECISIONS, PARTNER_EVENTS, PARTNER_ORDERS

T0_MS = 1_790_000_000_000


def command(offset: int, run: str = "run-000000000001", **extra: Any) -> SourceRecord:
    body = {"type": "ApproveRun", "run_id": run, "principal": "anna", **extra}
    return SourceRecord(
        COMMANDS.name, 0, offset, T0_MS + offset * 1000, run.encode(), json.dumps(body).encode()
    )


def order(offset: int, partner: str, run: str, partition: int = 3) -> SourceRecord:
    body = {
        "type": "OrderIssued",
        "order_id": f"tr-{offset:012d}",
        "run_id": run,
        "recipient": partner,
        "order": {"from_partner": "werk-a", "to_partner": partner, "quantity": 5.0},
    }
    return SourceRecord(
        PARTNER_ORDERS.name,
        partition,
        offset,
        T0_MS + 60_000 + offset,
        partner.encode(),
        json.dumps(body).encode(),
    )


def ack(offset: int, partner: str, partition: int = 1) -> SourceRecord:
    body = {
        "type": "OrderAcknowledged",
        "schema_version": 1,
        "event_id": f"evt-ack-{offset:08d}",
        "partner_id": partner,
        "occurred_at": "2026-09-21T12:00:00+00:00",
        "order_id": f"tr-{offset:012d}",
        "accepted": True,
    }
    return SourceRecord(
        PARTNER_EVENTS.name,
        partition,
        offset,
        T0_MS + 120_000,
        partner.encode(),
        json.dumps(body).encode(),
    )


def decision(offset: int, run: str, partners: list[str]) -> SourceRecord:
    body = {"type": "DecisionPublished", "run_id": run, "partners": partners, "status": "optimal"}
    return SourceRecord(
        DECISIONS.name, 2, offset, T0_MS + 30_000, run.encode(), json.dumps(body).encode()
    )


def entries(count: int) -> list[Entry]:
    result = record_batch(ChainHead(), {}, [command(i) for i in range(count)])
    return result.entries


def lines(items: list[Entry]) -> list[bytes]:
    return [encode_line(entry) for entry in items]


def rehashed(entry: Entry) -> Entry:
    """An entry forged by someone who knows the algorithm: its own hash recomputed."""
    forged = dict(entry)
    forged["hash"] = entry_hash(forged)
    return forged
