"""Thin Kafka helpers on aiokafka: reachability check, topic creation, producers.

Every aiokafka client of the services takes :func:`kafka_client_options` (security
protocol and SASL credentials from the settings); with the default PLAINTEXT it is empty,
so the clients are built exactly as without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from services.common.broker import BrokerError
from services.common.topics import ALL_TOPICS, TopicSpec

if TYPE_CHECKING:
    from services.common.settings import ServiceSettings


def kafka_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Security options for every aiokafka client (producer, consumer, admin).

    PLAINTEXT (the default, the embedded broker): no options at all. SASL_PLAINTEXT /
    SASL_SSL: mechanism, username and password (the settings refuse SASL without them);
    SASL_SSL verifies the broker against the system trust store (``SSL_CERT_FILE`` names a
    private CA bundle).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    assert settings.kafka_username and settings.kafka_password  # checked by the settings
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": settings.kafka_password.get_secret_value(),
    }
    if protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context()
    return options


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[TopicSpec] = ALL_TOPICS,
    timeout: float = 20.0,
    replication_factor: int = 1,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Raises :class:`BrokerError` with one readable line when the broker is unusable.
    ``options``: :func:`kafka_client_options`.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **(options or {})
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        await _quiet_close(admin)
        raise BrokerError(f"Kafka broker at {bootstrap} is not reachable: {exc!r}") from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        created: list[str] = []
        for spec in wanted:
            try:
                await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, replication_factor)],
                    timeout_ms=int(timeout * 1000),
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as exc:
        raise BrokerError(f"cannot create topics on {bootstrap}: {exc!r}") from exc
    finally:
        await _quiet_close(admin)


async def _quiet_close(admin: AIOKafkaAdminClient) -> None:
    with contextlib.suppress(Exception):
        await admin.close()


def durable_producer(
    bootstrap: str, options: Mapping[str, Any] | None = None, **overrides: object
) -> AIOKafkaProducer:
    """A producer that only reports success once all in-sync replicas have the write.

    ``options``: :func:`kafka_client_options`.
    """
    config: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 2,
        "max_batch_size": 1 << 20,
        "max_request_size": 4 << 20,
        "enable_idempotence": False,
    }
    config.update(options or {})
    config.update(overrides)
    return AIOKafkaProducer(**config)


async def stop_client(client: Any) -> None:
    """Stop an aiokafka consumer or producer.

    aiokafka's ``stop()`` raises ``CancelledError`` when it runs right after ``start()``
    (it awaits an internal task it has just cancelled before that task ever ran). That
    is not a cancellation of the caller, so it is swallowed unless the caller itself
    is being cancelled.
    """
    current = asyncio.current_task()
    try:
        await client.stop()
    except asyncio.CancelledError:
        if current is not None and current.cancelling():
            raise


async def assigned_consumer(
    bootstrap: str,
    topic: str,
    start: str | dict[int, int] = "beginning",
    options: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A started consumer with every partition of ``topic`` assigned (no consumer group).

    ``start`` is ``"beginning"``, ``"end"`` or an offset per partition (missing: 0);
    ``options``: :func:`kafka_client_options`.
    """
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 8 << 20,
        "fetch_max_bytes": 32 << 20,
    }
    settings.update(options or {})
    settings.update(overrides)
    consumer = AIOKafkaConsumer(**settings)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if start == "beginning":
            await consumer.seek_to_beginning(*tps)
        elif start == "end":
            await consumer.seek_to_end(*tps)
        else:
            assert isinstance(start, dict)
            for tp in tps:
                consumer.seek(tp, start.get(tp.partition, 0))
    except BaseException:
        await stop_client(consumer)
        raise
    return consumer
