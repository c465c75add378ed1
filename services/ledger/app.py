"""Faust wiring of the ledger: one agent over the partner topic, batches of raw records.

The agent only moves bytes: it hands each batch to the pure :class:`LedgerProcessor`,
then writes the changelog, alerts and dead letters and waits for the broker's
acknowledgement before Faust acks (and later commits) the batch's offsets. State is
durable through the changelog topic: a partition's state is rebuilt from it the first
time this worker sees the partition (after start or a rebalance).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from services.common.kafka import durable_producer, kafka_client_options
from services.common.logging import get_logger
from services.common.topics import ALERTS, DEAD_LETTERS, LEDGER_CHANGELOG, PARTNER_EVENTS
from services.ledger import metrics
from services.ledger.processor import Inbound, LedgerProcessor
from services.ledger.recovery import read_changelogs
from services.ledger.settings import LedgerSettings

log = get_logger("ledger")


class LedgerRuntime:
    """The I/O around the processor: producer, recovery, balance reports."""

    def __init__(self, settings: LedgerSettings, bootstrap: str, processor: LedgerProcessor):
        self.settings = settings
        self.bootstrap = bootstrap
        self.processor = processor
        self.kafka_options = kafka_client_options(settings)
        self.producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._recovery_lock = asyncio.Lock()
        # batches and retention sweeps change the same state and write the same changelog:
        # one at a time, so the changelog order is the order of the changes
        self._write_lock = asyncio.Lock()
        self._last_balance = 0.0

    async def start(self) -> AIOKafkaProducer:
        async with self._start_lock:
            if self.producer is None:
                producer = durable_producer(self.bootstrap, self.kafka_options)
                await producer.start()
                self.producer = producer
        return self.producer

    async def stop(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()

    async def ensure_recovered(self, partitions: set[int]) -> None:
        """Rebuild the given partitions from the changelog unless this worker holds them."""
        async with self._recovery_lock:
            missing = {p for p in partitions if not self.processor.has(p)}
            if not missing:
                return
            started = time.perf_counter()
            records = await read_changelogs(self.bootstrap, missing, options=self.kafka_options)
            now = time.time()
            for partition, partition_records in sorted(records.items()):
                self.processor.restore_partition(partition, partition_records, now)
            elapsed = time.perf_counter() - started
            metrics.RECOVERY_SECONDS.observe(elapsed)
            log.info(
                "partitions_recovered",
                partitions=sorted(missing),
                changelog_records=sum(len(r) for r in records.values()),
                positions=sum(len(self.processor.states[p].positions) for p in missing),
                seconds=round(elapsed, 3),
            )

    async def assigned(self, partitions: set[int]) -> None:
        """Rebuild newly assigned partitions eagerly; forget the ones no longer held."""
        self.revoke(set(self.processor.states) - partitions)
        await self.ensure_recovered(partitions)

    def revoke(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.processor.drop_partition(partition)
        if partitions:
            log.info("partitions_revoked", partitions=sorted(partitions))

    async def sweep(self) -> int:
        """Retention sweep over the partitions this worker holds; positions dropped."""
        days = self.settings.retention_positions_days
        if days is None:
            return 0
        async with self._write_lock:
            producer = await self.start()
            now = time.time()
            out = self.processor.sweep(now, days * 86_400)
            pending: list[Any] = []
            for partition, records in out.changelog.items():
                for record in records:
                    pending.append(
                        await producer.send(
                            LEDGER_CHANGELOG.name,
                            record,
                            key=str(partition).encode(),
                            partition=partition,
                        )
                    )
            for key, value in out.alerts:
                pending.append(await producer.send(ALERTS.name, value, key=key))
            if pending:
                await asyncio.gather(*pending)
        if out.expired_positions:
            metrics.EXPIRED_POSITIONS.inc(out.expired_positions)
            log.info("retention_sweep", expired_positions=out.expired_positions, days=days)
        return out.expired_positions

    async def handle(self, batch: list[Inbound]) -> None:
        async with self._write_lock:
            await self._handle(batch)

    async def _handle(self, batch: list[Inbound]) -> None:
        started = time.perf_counter()
        producer = await self.start()
        await self.ensure_recovered({m.partition for m in batch})
        now = time.time()
        out = self.processor.process(batch, now)
        pending: list[Any] = []
        for partition, records in out.changelog.items():
            key = str(partition).encode()
            for record in records:
                pending.append(
                    await producer.send(LEDGER_CHANGELOG.name, record, key=key, partition=partition)
                )
        for key, value in out.alerts:
            pending.append(await producer.send(ALERTS.name, value, key=key))
        for key, value in out.dead_letters:
            pending.append(await producer.send(DEAD_LETTERS.name, value, key=key))
        if now - self._last_balance >= self.settings.ledger_balance_interval:
            self._last_balance = now
            for key, value in self.processor.balance_reports(now):
                pending.append(await producer.send(ALERTS.name, value, key=key))
        if pending:
            await asyncio.gather(*pending)
        metrics.record_outcome(out)
        done = time.time()
        for message in batch:
            if message.timestamp_ms:
                metrics.PROCESSING_LATENCY.observe(max(0.0, done - message.timestamp_ms / 1000))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for partner in out.removed_partners:
            log.info("partner_removed", partner=partner)
        if out.rejected or out.transitions:
            log.info(
                "batch_processed",
                records=len(batch),
                positions=out.positions,
                rejected=dict(out.rejected),
                shortage_transitions=dict(out.transitions),
            )


def faust_credentials(settings: LedgerSettings) -> dict[str, Any]:
    """The Faust equivalent of :func:`kafka_client_options`: nothing for PLAINTEXT, else
    ``broker_credentials`` (SASL over TLS when the options carry an SSL context)."""
    options = kafka_client_options(settings)
    if not options:
        return {}
    return {
        "broker_credentials": faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),
        )
    }


def create_app(settings: LedgerSettings, bootstrap: str, runtime: LedgerRuntime) -> faust.App:
    app = faust.App(
        settings.group_id,
        broker=";".join(f"kafka://{b}" for b in bootstrap.split(",")),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        web_enabled=False,
        autodiscover=False,
        topic_replication_factor=settings.kafka_replication_factor,
        topic_partitions=PARTNER_EVENTS.partitions,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout / 3),
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=16_384,
        consumer_max_fetch_size=16 << 20,
        producer_acks=-1,
        **faust_credentials(settings),
    )
    topic = app.topic(
        PARTNER_EVENTS.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic)
    async def ingest(stream: Any) -> None:
        async for events in stream.take_events(
            settings.ledger_batch_size, within=settings.ledger_batch_window
        ):
            batch = [
                Inbound(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                    timestamp_ms=int(e.message.timestamp * 1000) if e.message.timestamp else None,
                )
                for e in events
            ]
            await runtime.handle(batch)

    @app.timer(interval=settings.ledger_sweep_interval)  # type: ignore[untyped-decorator]
    async def retention_sweep() -> None:
        await runtime.sweep()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        runtime.revoke({tp.partition for tp in revoked if tp.topic == PARTNER_EVENTS.name})

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        await runtime.assigned({tp.partition for tp in assigned if tp.topic == PARTNER_EVENTS.name})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(sender: Any, **_: Any) -> None:
        await runtime.stop()

    return app
