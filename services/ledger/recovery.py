"""Reading ledger changelog partitions back from Kafka (restart and rebalance recovery).

Where the log ends is not taken from the broker's end offsets (tansu under-reports them
when the last write carried several records): a marker record is appended to each
partition first, and reading stops at the marker's acknowledged offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.kafka import stop_client
from services.common.topics import LEDGER_CHANGELOG


async def read_changelogs(
    bootstrap: str,
    partitions: Iterable[int],
    topic: str = LEDGER_CHANGELOG.name,
    options: Mapping[str, Any] | None = None,
) -> dict[int, list[bytes]]:
    """All records of the given changelog partitions, from the beginning to the current end.

    ``options``: :func:`services.common.kafka.kafka_client_options`.
    """
    wanted = sorted(set(partitions))
    records: dict[int, list[bytes]] = {p: [] for p in wanted}
    if not wanted:
        return records
    ends = await _append_markers(bootstrap, topic, wanted, options or {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
        **(options or {}),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(tps)
        ends_by_tp = {TopicPartition(topic, p): end for p, end in ends.items()}
        pending = {tp for tp in tps if ends_by_tp[tp] > 0}
        if pending:
            await consumer.seek_to_beginning(*pending)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < ends_by_tp[tp] and message.value is not None:
                        records[tp.partition].append(message.value)
            for tp in list(pending):
                if await consumer.position(tp) >= ends_by_tp[tp]:
                    pending.discard(tp)
        return records
    finally:
        await stop_client(consumer)


async def _append_markers(
    bootstrap: str, topic: str, partitions: list[int], options: Mapping[str, Any]
) -> dict[int, int]:
    """Append one marker per partition; returns each marker's offset (= records before it)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    try:
        return await append_markers(producer, topic, partitions)
    finally:
        await stop_client(producer)


async def append_markers(
    producer: AIOKafkaProducer, topic: str, partitions: list[int], reason: str = "recovery"
) -> dict[int, int]:
    """Append one marker record per partition (ignored by ``restore``); returns their offsets.

    A reader that has consumed a partition past its marker has seen every record written
    to it before the marker.
    """
    # sent together, acknowledged together: one round trip, not one per partition
    pending = [
        await producer.send(
            topic, orjson.dumps({"v": 1, "p": partition, "marker": reason}), partition=partition
        )
        for partition in partitions
    ]
    metas = await asyncio.gather(*pending)
    return {partition: meta.offset for partition, meta in zip(partitions, metas, strict=True)}
