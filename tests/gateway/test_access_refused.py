"""The gateway's refusals reach verbund.commands as AccessRefused (real broker, real producer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.audit import AccessRefused
from services.common.topics import COMMANDS
from tests.gateway.conftest import OTHER, PARTNER, Gateway, stock_event


async def _refusals(bootstrap: str, start: int, want: int) -> list[tuple[bytes, AccessRefused]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(COMMANDS.name, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[tuple[bytes, AccessRefused]] = []
        deadline = asyncio.get_running_loop().time() + 15
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.value and b'"AccessRefused"' in record.value:
                        found.append(
                            (record.key or b"", AccessRefused.model_validate_json(record.value))
                        )
        return found
    finally:
        await consumer.stop()


async def _end(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tp = TopicPartition(COMMANDS.name, 0)
        ends: dict[Any, int] = await consumer.end_offsets([tp])
        return ends[tp]
    finally:
        await consumer.stop()


async def test_refusals_are_published_keyed_by_principal(gateway: Gateway, bootstrap: str) -> None:
    start = await _end(bootstrap)
    secret = "vbd_not-a-real-token"
    status, _ = await gateway.post(
        stock_event(), partner=None, headers={"Authorization": f"Bearer {secret}"}
    )
    assert status == 401
    status, body = await gateway.post(stock_event(partner=PARTNER), partner=OTHER)
    assert status == 403 and body["reason"] == "forbidden_partner"
    found = await _refusals(bootstrap, max(0, start - 1), 2)
    by_reason = {event.reason: (key, event) for key, event in found}
    key, unknown = by_reason["unknown or revoked token"]
    assert unknown.principal.startswith("token:") and key == unknown.principal.encode()
    assert unknown.service == "gateway" and unknown.action == "post_events"
    [(key, foreign)] = [v for r, v in by_reason.items() if "another partner" in r]
    assert foreign.principal == OTHER and foreign.role == "partner" and key == OTHER.encode()
    assert all(secret not in json.dumps(e.model_dump(mode="json")) for _, e in found)
