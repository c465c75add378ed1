"""Gateway fixtures: tokens, a gateway app on the real embedded broker, a Kafka reader."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.common.kafka import durable_producer
from services.common.topics import PARTNER_EVENTS
from services.gateway.app import GatewayMetrics, create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import issue_token

PARTNER = "klinikum-nord"
OTHER = "stadtwerke-sued"
MAX_BODY = 200_000
MAX_EVENTS = 50


@dataclass
class Tokens:
    path: Path
    by_partner: dict[str, str]

    def auth(self, partner: str = PARTNER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.by_partner[partner]}"}


@pytest.fixture(scope="session")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    path = tmp_path_factory.mktemp("gateway") / "tokens.yaml"
    return Tokens(path, {p: issue_token(p, path) for p in (PARTNER, OTHER)})


@pytest.fixture(scope="session")
def settings(tokens: Tokens, bootstrap: str) -> GatewaySettings:
    return GatewaySettings(
        gateway_tokens_file=tokens.path,
        kafka_bootstrap=bootstrap,
        gateway_max_body_bytes=MAX_BODY,
        gateway_max_events=MAX_EVENTS,
        gateway_send_timeout=10.0,
    )


@dataclass
class Gateway:
    client: TestClient[Any, Any]
    metrics: GatewayMetrics
    tokens: Tokens

    async def post(
        self, body: Any, partner: str | None = PARTNER, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        import json

        sent_headers = {"Content-Type": "application/json"}
        if partner is not None:
            sent_headers.update(self.tokens.auth(partner))
        sent_headers.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await self.client.post("/v1/events", data=data, headers=sent_headers)
        return response.status, await response.json()


@pytest_asyncio.fixture(scope="session")
async def gateway(settings: GatewaySettings, tokens: Tokens) -> AsyncIterator[Gateway]:
    producer = durable_producer(settings.require_bootstrap())
    await producer.start()
    metrics = GatewayMetrics()
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(settings, producer, metrics=metrics))
    )
    await client.start_server()
    try:
        yield Gateway(client, metrics, tokens)
    finally:
        await client.close()
        await producer.stop()


def stock_event(partner: str = PARTNER, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "StockReported",
        "schema_version": 1,
        "event_id": f"evt-{uuid.uuid4()}",
        "partner_id": partner,
        "occurred_at": "2026-11-22T08:00:00+01:00",
        "positions": [
            {
                "site_id": "lager-1",
                "material_id": "NACL-500ML",
                "unit": "pcs",
                "on_hand": 120.0,
                "safety_stock": 40.0,
                "daily_consumption": 12.5,
            },
            {
                "site_id": "lager-1",
                "material_id": "HANDSCHUH-M",
                "unit": "pcs",
                "on_hand": 5000.0,
                "safety_stock": 1000.0,
                "daily_consumption": 300.0,
            },
        ],
    }
    event.update(overrides)
    return event


def need_event(partner: str = PARTNER, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "NeedReported",
        "event_id": f"evt-{uuid.uuid4()}",
        "partner_id": partner,
        "occurred_at": "2026-11-22T08:00:00Z",
        "need_id": "need-1",
        "site_id": "lager-1",
        "material_id": "NACL-500ML",
        "unit": "pcs",
        "quantity": 400.0,
        "needed_by": "2026-11-25",
        "criticality": "hospital",
    }
    event.update(overrides)
    return event


def capacity_event(partner: str = PARTNER, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "CapacityOffered",
        "event_id": f"evt-{uuid.uuid4()}",
        "partner_id": partner,
        "occurred_at": "2026-11-22T08:00:00Z",
        "offer_id": "offer-7",
        "site_id": "werk-2",
        "capability": "sterilisation",
        "hours": 40.0,
        "available_from": "2026-11-23T06:00:00Z",
        "available_until": "2026-11-27T18:00:00Z",
    }
    event.update(overrides)
    return event


def ack_event(partner: str = PARTNER, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "OrderAcknowledged",
        "event_id": f"evt-{uuid.uuid4()}",
        "partner_id": partner,
        "occurred_at": "2026-11-22T08:00:00Z",
        "order_id": "order-2026-0001",
        "accepted": True,
    }
    event.update(overrides)
    return event


class TopicReader:
    """Reads verbund.partner.events from remembered end offsets, by manual assignment."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
        )
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(PARTNER_EVENTS.name)
        if not parts:
            await self.consumer.topics()
            parts = self.consumer.partitions_for_topic(PARTNER_EVENTS.name) or set()
        self.partitions = [TopicPartition(PARTNER_EVENTS.name, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)

    async def mark(self) -> dict[TopicPartition, int]:
        assert self.consumer is not None
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return ends

    async def read_until(
        self, start: dict[TopicPartition, int], event_ids: set[str], timeout: float = 15.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record written since ``start``, read until all ``event_ids`` were seen.

        End offsets are not used as a stop mark: tansu reports the base offset of the
        last batch + 1 as the end, not the offset after the last record.
        """
        assert self.consumer is not None
        for tp in self.partitions:
            self.consumer.seek(tp, start[tp])
        records: list[ConsumerRecord[bytes, bytes]] = []
        missing = set(event_ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while missing:
            if loop.time() > deadline:
                raise AssertionError(f"events not found in Kafka: {sorted(missing)}")
            batch = await self.consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                for record in tp_records:
                    records.append(record)
                    missing.discard(json.loads(record.value or b"{}").get("event_id"))
        return records

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()


@pytest_asyncio.fixture(scope="session")
async def reader(bootstrap: str) -> AsyncIterator[TopicReader]:
    topic_reader = TopicReader(bootstrap)
    await topic_reader.start()
    try:
        yield topic_reader
    finally:
        await topic_reader.stop()
