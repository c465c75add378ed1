"""The audit service's Kafka adapter: consume, append durably, publish, then commit.

Order per batch: entries are written and fsync'd to the log file, then published to
``verbund.audit``, then the consumed offsets are committed. A crash before the commit
means re-delivery, which the log's own source-offset marks turn into no-ops. The file
is authoritative; the topic is a feed of it (a crash between fsync and publish leaves
those entries only in the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from services.audit import metrics
from services.audit.batch import record_batch
from services.audit.chain import Entry, canonical
from services.audit.records import AUDITED_TOPICS, SourceRecord
from services.audit.settings import AuditSettings
from services.audit.store import AuditLog, verify_file
from services.audit.verify import VerifyResult
from services.common.kafka import durable_producer, kafka_client_options
from services.common.logging import get_logger
from services.common.topics import AUDIT

log = get_logger("audit")


def report_verification(result: VerifyResult) -> None:
    metrics.LOG_INTACT.set(1 if result.ok else 0)
    if result.ok:
        log.info("audit_log_verified", entries=result.entries, last_seq=result.last_seq)
    else:
        metrics.VERIFY_FAILURES.inc()
        log.error(
            "audit_log_tampered",
            line=result.line,
            seq=result.seq,
            problem=str(result.problem),
            detail=result.detail,
        )


class AuditService:
    def __init__(self, settings: AuditSettings, bootstrap: str, audit_log: AuditLog) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.log = audit_log
        self.committed: dict[TopicPartition, int] = {}
        self.consumer: AIOKafkaConsumer
        self.producer: AIOKafkaProducer

    async def run(self) -> None:
        # aiokafka clients must be created inside the running event loop
        session_ms = int(self.settings.kafka_session_timeout * 1000)
        kafka_options = kafka_client_options(self.settings)
        self.consumer = AIOKafkaConsumer(
            *AUDITED_TOPICS,
            bootstrap_servers=self.bootstrap,
            group_id=self.settings.audit_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 4),
            rebalance_timeout_ms=session_ms,
            max_poll_records=self.settings.audit_batch_size,
            **kafka_options,
        )
        self.producer = durable_producer(self.bootstrap, kafka_options)
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                await self._forget_recreated_topics()
                await self._loop()
            finally:
                await self.consumer.stop()
        finally:
            await self.producer.stop()

    async def _forget_recreated_topics(self) -> None:
        """A source partition the group never committed whose end lies before what the log
        recorded was recreated (e.g. the memory-only dev broker restarted): offsets
        restart there, so its de-duplication mark must not hide new records."""
        for topic, partition in list(self.log.marks):
            if topic not in AUDITED_TOPICS:
                continue
            tp = TopicPartition(topic, partition)
            with contextlib.suppress(KafkaError, ValueError):
                if await self.consumer.committed(tp) is not None:
                    continue
                ends = await self.consumer.end_offsets([tp])
                if ends.get(tp, 0) <= self.log.marks[(topic, partition)]:
                    marker = await asyncio.to_thread(self.log.forget_source, (topic, partition))
                    log.warning("audit_source_restarted", topic=topic, partition=partition)
                    await self._publish(marker)

    async def _loop(self) -> None:
        next_lag = 0.0
        next_verify = (
            time.monotonic() + self.settings.audit_verify_interval
            if self.settings.audit_verify_interval
            else None
        )
        verifying: asyncio.Task[VerifyResult] | None = None
        while True:
            batches = await self.consumer.getmany(
                timeout_ms=1000, max_records=self.settings.audit_batch_size
            )
            records = [
                SourceRecord(tp.topic, tp.partition, m.offset, m.timestamp, m.key, m.value)
                for tp, messages in batches.items()
                for m in messages
            ]
            if records:
                await self._handle(records)
            now = time.monotonic()
            if now >= next_lag:
                await self._update_lag()
                next_lag = now + self.settings.audit_lag_interval
            if verifying is not None and verifying.done():
                report_verification(verifying.result())
                verifying = None
            if next_verify is not None and now >= next_verify and verifying is None:
                # only complete, fsync'd lines lie before the current size
                size = self.log.path.stat().st_size
                verifying = asyncio.ensure_future(
                    asyncio.to_thread(verify_file, self.log.path, size)
                )
                next_verify = now + self.settings.audit_verify_interval

    async def _handle(self, records: list[SourceRecord]) -> None:
        result = record_batch(self.log.head, self.log.marks, records)
        for failure in result.failures:
            log.error(
                "audit_record_failed",
                topic=failure.topic,
                partition=failure.partition,
                offset=failure.offset,
                error=failure.error,
                recorded_as="unparseable",
            )
        await asyncio.to_thread(self.log.append, result.entries, result.head, result.marks)
        for entry in result.entries:
            metrics.ENTRIES_APPENDED.labels(entry["kind"]).inc()
        for reason, count in result.skipped.items():
            metrics.RECORDS_SKIPPED.labels(reason).inc(count)
        if result.entries:
            metrics.LAST_SEQ.set(result.entries[-1]["seq"])
            await self._publish(result.entries)
            log.debug(
                "audit_appended", entries=len(result.entries), last_seq=result.head.next_seq - 1
            )
        offsets = {TopicPartition(t, p): offset for (t, p), offset in result.commit.items()}
        try:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took the partitions away: they will be re-delivered and skipped
            log.warning("audit_commit_failed", error=repr(exc))

    async def _publish(self, entries: list[Entry]) -> None:
        delay = 0.5
        while True:
            try:
                futures = [
                    await self.producer.send(
                        AUDIT.name, canonical(entry), key=str(entry["seq"]).encode()
                    )
                    for entry in entries
                ]
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                log.error("audit_publish_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _update_lag(self) -> None:
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        try:
            ends: dict[TopicPartition, Any] = await self.consumer.end_offsets(assigned)
        except (KafkaError, ValueError) as exc:
            log.debug("audit_lag_unavailable", error=repr(exc))
            return
        lag: dict[str, int] = {topic: 0 for topic in {tp.topic for tp in assigned}}
        for tp in assigned:
            done = self.committed.get(tp)
            if done is None:
                with contextlib.suppress(KafkaError, ValueError):
                    done = await self.consumer.committed(tp)
            lag[tp.topic] += max(0, int(ends.get(tp) or 0) - int(done or 0))
        for topic, value in lag.items():
            metrics.CONSUMER_LAG.labels(topic).set(value)
