"""Reading a ledger changelog partition back from Kafka (restart recovery)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.topics import LEDGER_CHANGELOG


async def read_changelog(
    bootstrap: str, partition: int, topic: str = LEDGER_CHANGELOG.name
) -> list[bytes]:
    """All records of one changelog partition, from the beginning to the current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        records: list[bytes] = []
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            for message in batches.get(tp, ()):
                if message.offset >= end:
                    break
                if message.value is not None:
                    records.append(message.value)
        return records
    finally:
        await consumer.stop()
