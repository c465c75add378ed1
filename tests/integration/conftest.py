"""Fixtures shared by the integration tests that use the session's embedded broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from services.common.topics import ALERTS
from tests.integration.kafka_helpers import TopicCollector


@pytest.fixture(scope="module")
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, as a partner system would use it (acks=all)."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="module")
async def alerts(bootstrap: str) -> AsyncIterator[TopicCollector]:
    """Every record on the alerts topic, collected from the beginning."""
    collector = await TopicCollector(bootstrap, ALERTS.name).start()
    yield collector
    await collector.stop()
