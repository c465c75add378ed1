"""A Kafka producer faked at the edge for coordinator service tests: holds back, refuses or
acknowledges sends and keeps what went out."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka.errors import KafkaTimeoutError

from services.common.topics import PARTNER_ORDERS


class FakeProducer:
    """Holds back order messages until ``gate`` is set; refuses every message while
    ``down`` and every message of the revisions in ``refuse``."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.refuse: set[int] = set()
        self.down = False
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
        message = orjson.loads(value)
        if self.down or message.get("revision") in self.refuse:
            raise KafkaTimeoutError("broker unreachable")
        if topic == PARTNER_ORDERS.name:
            await self.gate.wait()
        self.sent.append({"topic": topic, **message})
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def stop(self) -> None:
        return None

    def issued(self, revision: int) -> list[tuple[str, str]]:
        """(order id, recipient) of each OrderIssued of ``revision`` sent."""
        return [
            (m["order_id"], m["recipient"])
            for m in self.sent
            if m.get("type") == "OrderIssued" and m["revision"] == revision
        ]
