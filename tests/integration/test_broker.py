"""The embedded broker starts, answers the Kafka protocol and stops cleanly."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.broker import BrokerError, EmbeddedBroker, free_port
from services.common.kafka import ensure_topics
from services.common.topics import ALL_TOPICS

pytestmark = pytest.mark.integration


async def test_topics_created_and_roundtrip(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait("verbund.deadletter", b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topics = await consumer.topics()
        assert {t.name for t in ALL_TOPICS} <= topics
        from aiokafka import TopicPartition

        tp = TopicPartition("verbund.deadletter", meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), 10)
        assert record.value == b"hello"
    finally:
        await consumer.stop()


def test_stop_is_clean_and_port_released() -> None:
    broker = EmbeddedBroker().start()
    port = broker.port
    assert broker.running
    broker.stop()
    assert not broker.running
    # the port can be bound again once the broker is gone
    again = EmbeddedBroker(port=port).start()
    again.stop()


def test_unreachable_broker_gives_one_line_error() -> None:
    port = free_port()
    with pytest.raises(BrokerError) as info:
        asyncio.run(ensure_topics(f"127.0.0.1:{port}", timeout=2))
    assert "not reachable" in str(info.value)
    assert "\n" not in str(info.value)
