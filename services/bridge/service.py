"""The partner bridge's Kafka adapter: consume, route (services/bridge/routing.py), produce,
then commit.

One consumer with manually assigned partitions, no group join: every partition of each
member's ``verbund.partner.<id>.events`` and of ``verbund.partner.orders``; the alliance file,
not a topic pattern, says whose topics to read. (A pattern subscription does work on the
embedded broker -- checked: group join about 3 s, a new topic picked up within the metadata
refresh, about 4.5 s -- but it needs a group join at every start and rebalance, re-delivers
uncommitted records at each rebalance, and would also read the topics of non-members.)
The consumer group (``VERBUND_BRIDGE_GROUP_ID``) only stores
offsets: a partition starts at its committed offset, else at the beginning.

Per fetched batch: every record is routed, the forwards and dead letters are produced in
consumption order, and only when the broker has acknowledged all of them (acks=all) are the
offsets committed. A crash in between forwards records again (at-least-once; the ledger
de-duplicates events by ``event_id``, partners see an order again with the same id and
revision). A send error retries that record and everything after it in the batch (with
backoff, until it succeeds), so later records of a partner never overtake earlier ones; only a
record the broker refuses for what it is (too large, bad timestamp: ``RECORD_ERRORS``) is
dead-lettered instead. No record can stop the bridge, and an outage only stalls it.

Run one bridge per cluster: two would both forward everything (harmless duplicates, double
the work); partitions are not shared between instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

from schemas.alliance import AllianceFileError, load_alliance
from services.bridge import metrics
from services.bridge.routing import (
    BRIDGE_ERROR,
    FORWARD_FAILED,
    NOT_A_PARTNER_TOPIC,
    Forward,
    Record,
    Rejection,
    dead_letter,
    partner_event_types,
    route_inbound,
    route_outbound,
)
from services.bridge.settings import BridgeSettings
from services.common.broker import BrokerError
from services.common.kafka import (
    durable_producer,
    ensure_topics,
    kafka_client_options,
    stop_client,
)
from services.common.logging import get_logger
from services.common.topics import (
    DEAD_LETTERS,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    PARTNER_TOPIC_PARTITIONS,
    owner_of_partner_topic,
    partner_events_topic,
    partner_orders_topic,
    partner_topics,
)

log = get_logger("bridge")

INBOUND = "inbound"
OUTBOUND = "outbound"
MAX_RETRY_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class Item:
    """One consumed record and what the bridge produces for it."""

    record: Record
    direction: str
    forward: Forward
    rejection: Rejection | None = None  # set: ``forward`` is the dead letter
    slim: bool = False  # the dead letter without the original bytes (the full one was refused)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


# Errors about the record itself: sending it again cannot succeed, so it is dead-lettered.
# Every other error (timeouts, an unreachable or unauthorised broker, ...) is retried until
# it succeeds: a broker outage stalls the bridge, it never drops records.
RECORD_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTimestampError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
)


def _retriable(error: BaseException) -> bool:
    return not isinstance(error, RECORD_ERRORS)


class PartnerBridge:
    def __init__(self, settings: BridgeSettings, bootstrap: str, alliance_file: Path) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.alliance_file = alliance_file
        self.options = kafka_client_options(settings)
        self.allowed_types = partner_event_types()
        self.members: frozenset[str] = frozenset()
        self._stamp: tuple[int, int, int] | None = None
        self._next_refresh = 0.0
        self._interval = settings.bridge_refresh_interval
        self.consumer: AIOKafkaConsumer
        self.producer: AIOKafkaProducer

    # -- lifecycle -----------------------------------------------------------------------
    async def run(self) -> None:
        # aiokafka clients must be created inside the running event loop
        # room for a dead letter of the largest accepted record (base64 + envelope)
        request_size = 2 * self.settings.bridge_max_message_bytes
        self.producer = durable_producer(
            self.bootstrap, self.options, max_request_size=request_size
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.settings.bridge_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=int(self.settings.bridge_fetch_wait * 1000),
            max_partition_fetch_bytes=2 * self.settings.bridge_max_message_bytes,
            fetch_max_bytes=8 * self.settings.bridge_max_message_bytes,
            **self.options,
        )
        await self.producer.start()
        try:
            await self.consumer.start()
            try:
                await self.refresh(force=True)
                log.info(
                    "bridge_running",
                    partners=len(self.members),
                    event_types=sorted(self.allowed_types),
                )
                while True:
                    await self.step()
            finally:
                await stop_client(self.consumer)
        finally:
            await stop_client(self.producer)
            log.info("bridge_stopped")

    async def step(self) -> None:
        """One fetch, its forwards and dead letters, the commit; the periodic alliance check."""
        try:
            batches = await self.consumer.getmany(
                timeout_ms=int(self.settings.bridge_fetch_wait * 1000),
                max_records=self.settings.bridge_batch_size,
            )
        except KafkaError as exc:
            log.error("bridge_fetch_failed", error=repr(exc))
            await asyncio.sleep(1.0)
            batches = {}
        if batches:
            await self.handle(batches)
        if time.monotonic() >= self._next_refresh:
            await self.refresh()

    # -- the alliance: whose topics ----------------------------------------------------------
    async def refresh(self, force: bool = False) -> None:
        """Re-read the alliance file when it changed: create the topics of new partners and
        (re)assign partitions. A broken file keeps the partners the bridge has (logged);
        only at start does it fail."""
        self._next_refresh = time.monotonic() + self._interval
        stamp = _stamp(self.alliance_file)
        if not force and stamp == self._stamp:
            return
        try:
            alliance = load_alliance(self.alliance_file)
        except AllianceFileError as exc:
            if force:
                raise
            log.error("bridge_alliance_unreadable", error=str(exc), kept=len(self.members))
            self._stamp = stamp
            return
        members = frozenset(p.id for p in alliance.partners)
        if members == self.members and not force:
            self._stamp = stamp
            return
        try:
            created = await ensure_topics(
                self.bootstrap,
                [spec for partner in sorted(members) for spec in partner_topics(partner)],
                replication_factor=self.settings.kafka_replication_factor,
                options=self.options,
            )
        except BrokerError as exc:
            if force:
                raise
            log.error("bridge_topics_not_created", error=str(exc), retry_in=self._interval)
            return  # the file counts as unread: the next check tries again
        self._stamp = stamp
        added, removed = sorted(members - self.members), sorted(self.members - members)
        self.members = members
        await self._writes_to(
            [PARTNER_EVENTS.name, DEAD_LETTERS.name, *map(partner_orders_topic, sorted(members))]
        )
        await self._assign()
        metrics.PARTNERS.set(len(members))
        log.info(
            "bridge_partners",
            partners=len(members),
            added=added if len(added) <= 50 else len(added),
            removed=removed if len(removed) <= 50 else len(removed),
            topics_created=len(created),
        )

    async def _writes_to(self, topics: list[str]) -> None:
        """Make the producer track the metadata of every topic it writes, before it writes.

        aiokafka keeps metadata only for the topics it was asked about once it was asked
        about any: a first send to a new topic (a partner's orders topic) would otherwise
        narrow its metadata to that topic, and a record already queued for another topic
        (a dead letter) would wait for a leader forever (seen on the embedded broker)."""
        for topic in topics:
            try:
                await asyncio.wait_for(self.producer.partitions_for(topic), 30)
            except (KafkaError, TimeoutError) as exc:
                log.error("bridge_topic_unavailable", topic=topic, error=repr(exc))

    async def _assign(self) -> None:
        """Assign every partition of the members' events topics and of the orders topic.
        Partitions kept go on from where they were; new ones start at their committed offset
        (else the beginning)."""
        kept: dict[TopicPartition, int] = {}
        for tp in self.consumer.assignment():
            with contextlib.suppress(KafkaError, AssertionError):
                kept[tp] = await self.consumer.position(tp)
        await self.consumer.topics()  # fresh metadata: topics may have just been created
        wanted: list[TopicPartition] = []
        topics = [partner_events_topic(p) for p in sorted(self.members)]
        specs = [(t, PARTNER_TOPIC_PARTITIONS) for t in topics]
        for topic, count in [*specs, (PARTNER_ORDERS.name, PARTNER_ORDERS.partitions)]:
            partitions = self.consumer.partitions_for_topic(topic) or set(range(count))
            wanted.extend(TopicPartition(topic, p) for p in sorted(partitions))
        self.consumer.assign(wanted)
        for tp in wanted:
            if tp in kept:
                self.consumer.seek(tp, kept[tp])

    # -- records -------------------------------------------------------------------------------
    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        if await self._recipients_unknown(batches):
            await self.refresh()
        now = time.time()
        items: list[Item] = []
        offsets: dict[TopicPartition, int] = {}
        max_bytes = self.settings.bridge_max_message_bytes
        for tp, messages in batches.items():
            owner = owner_of_partner_topic(tp.topic)
            for message in messages:
                record = Record(
                    tp.topic, tp.partition, message.offset, message.key, message.value,
                    message.timestamp,
                )  # fmt: skip
                direction = OUTBOUND if tp.topic == PARTNER_ORDERS.name else INBOUND
                try:
                    if direction == OUTBOUND:
                        route = route_outbound(record, self.members)
                    elif owner is not None and owner[1] == "events":
                        route = route_inbound(record, owner[0], self.allowed_types, max_bytes)
                    else:  # not a topic the bridge assigns; never forward it
                        route = Rejection(NOT_A_PARTNER_TOPIC, f"{tp.topic} is not served here")
                except Exception as exc:  # a bug must not let one record stop the bridge
                    log.exception("bridge_route_failed", topic=tp.topic, offset=message.offset)
                    route = Rejection(BRIDGE_ERROR, f"the bridge could not route it: {exc!r}")
                if isinstance(route, Rejection):
                    items.append(Item(record, direction, dead_letter(record, route, now), route))
                else:
                    items.append(Item(record, direction, route))
            if messages:
                offsets[tp] = messages[-1].offset + 1
        await self._deliver(items)
        try:
            await self.consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            metrics.COMMIT_FAILURES.inc()
            log.warning("bridge_commit_failed", error=repr(exc))

    async def _recipients_unknown(self, batches: dict[TopicPartition, list[Any]]) -> bool:
        """Whether an order names a partner the bridge does not know yet (worth a look at
        the alliance file before dead-lettering it)."""
        for tp, messages in batches.items():
            if tp.topic != PARTNER_ORDERS.name:
                continue
            for message in messages:
                key = message.key
                if key is not None and key.decode("utf-8", "replace") not in self.members:
                    return _stamp(self.alliance_file) != self._stamp
        return False

    async def _deliver(self, items: list[Item]) -> None:
        """Produce every item in order and wait until the broker acknowledged each one."""
        delay = 0.5
        todo = items
        while todo:
            errors = await self._send_all([item.forward for item in todo])
            retry: list[Item] = []
            wait = False
            for item, error in zip(todo, errors, strict=True):
                if wait:  # after a retriable failure: keep the order, send the rest again
                    retry.append(item)
                elif error is None:
                    self._done(item)
                elif _retriable(error):
                    log.warning("bridge_send_retry", topic=item.forward.topic, error=repr(error))
                    retry.append(item)
                    wait = True
                elif item.rejection is None:
                    rejection = Rejection(
                        FORWARD_FAILED, f"{item.forward.topic} refused the record: {error!r}"
                    )
                    letter = dead_letter(item.record, rejection, time.time())
                    retry.append(Item(item.record, item.direction, letter, rejection))
                elif not item.slim and item.record.value:
                    # e.g. an invalid record of 800 KB: base64 makes its letter larger than
                    # the broker takes; keep reason and source at least
                    log.warning(
                        "bridge_dead_letter_without_original",
                        reason=item.rejection.reason,
                        source_topic=item.record.topic,
                        source_offset=item.record.offset,
                        error=repr(error),
                    )
                    letter = dead_letter(
                        item.record, item.rejection, time.time(), keep_original=False
                    )
                    retry.append(
                        Item(item.record, item.direction, letter, item.rejection, slim=True)
                    )
                else:
                    metrics.DEAD_LETTERS_LOST.inc()
                    log.error(
                        "bridge_dead_letter_lost",
                        reason=item.rejection.reason,
                        source_topic=item.record.topic,
                        source_partition=item.record.partition,
                        source_offset=item.record.offset,
                        error=repr(error),
                    )
            todo = retry
            if wait:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _send_all(self, forwards: list[Forward]) -> list[BaseException | None]:
        futures: list[asyncio.Future[Any]] = []
        loop = asyncio.get_running_loop()
        for forward in forwards:
            try:
                futures.append(
                    await self.producer.send(
                        forward.topic,
                        forward.value,
                        key=forward.key,
                        timestamp_ms=forward.timestamp_ms,
                    )
                )
            except KafkaError as exc:  # refused before sending, e.g. larger than allowed
                failed: asyncio.Future[Any] = loop.create_future()
                failed.set_exception(exc)
                futures.append(failed)
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    @staticmethod
    def _done(item: Item) -> None:
        if item.rejection is None:
            metrics.FORWARDED.labels(item.direction).inc()
            return
        reason = item.rejection.reason
        metrics.DEAD_LETTERED.labels(item.direction, reason).inc()
        log.warning(
            "bridge_dead_lettered",
            direction=item.direction,
            reason=reason,
            detail=item.rejection.detail[:300],
            source_topic=item.record.topic,
            source_partition=item.record.partition,
            source_offset=item.record.offset,
        )
