"""A partner leaves: ``PartnerRemoved`` drops its live state in the ledger process, the removal
is in the changelog (replicas of console and coordinator drop it too), and it survives a
ledger restart on the embedded broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.cli.partner import publish_removal, removal
from services.common.topics import LEDGER_CHANGELOG
from services.coordinator.replica import AllianceReplica
from tests.integration.kafka_helpers import ServiceProcess, TopicCollector, metric_value
from tests.integration.test_ledger_service import held_positions, of, send, stock

pytestmark = pytest.mark.integration

LEAVING, STAYING = "hosp-leaving", "hosp-staying"


@pytest.fixture(scope="module")
def ledger(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("removal")
    partners = [
        {
            "id": pid,
            "name": pid.title(),
            "sector": "hospital",
            "region": "DE-BY",
            "criticality": "hospital",
            "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
        }
        for pid in (LEAVING, STAYING)
    ]
    alliance = directory / "alliance.yaml"
    alliance.write_text(yaml.safe_dump({"name": "Removal test", "partners": partners}))
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(alliance),
        "VERBUND_GROUP_ID": f"ledger-removal-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
    }
    service = ServiceProcess(["ledger"], env, directory / "ledger.log").start()
    try:
        yield service
    finally:
        service.stop()


async def replica_of_changelog(bootstrap: str) -> AllianceReplica:
    """What the console and the coordinator fold from the ledger's changelog."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(LEDGER_CHANGELOG.name) or set()
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(LEDGER_CHANGELOG.name) or set()
        tps = [TopicPartition(LEDGER_CHANGELOG.name, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        replica = AllianceReplica()

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.value is not None:
                        replica.apply(tp.partition, record.offset, record.value)
        return replica
    finally:
        await consumer.stop()


def data_age(ledger: ServiceProcess, partner: str) -> float | None:
    return metric_value(ledger.metrics(), "verbund_partner_data_age_seconds", partner=partner)


def up(ledger: ServiceProcess) -> bool:
    try:
        ledger.metrics()
    except OSError:
        return False
    return True


async def eventually(check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.2)


async def test_removed_partner_stays_removed_across_a_restart(
    ledger: ServiceProcess, alerts: TopicCollector, producer: AIOKafkaProducer, bootstrap: str
) -> None:
    # event times relative to now: the data-age check below must not depend on when
    # the module was collected
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    await send(producer, stock(STAYING, 500, t0), STAYING)
    await send(producer, stock(LEAVING, 5, t0), LEAVING)  # a critical shortage
    await alerts.wait_for(of(LEAVING, "ShortageDetected"), timeout=90)
    await eventually(lambda: data_age(ledger, STAYING) is not None)
    before = held_positions(ledger.metrics())

    await publish_removal(bootstrap, removal(LEAVING, "ops-test", "left the alliance"))
    # its open shortage resolves, its positions and freshness are gone
    await alerts.wait_for(of(LEAVING, "ShortageResolved"), timeout=60)
    await eventually(lambda: data_age(ledger, LEAVING) is None)
    await eventually(lambda: held_positions(ledger.metrics()) == before - 1)
    replica = await replica_of_changelog(bootstrap)
    assert not any(k[0] == LEAVING for s in replica.states.values() for k in s.positions)
    assert any(LEAVING in s.removed for s in replica.states.values())
    assert any(k[0] == STAYING for s in replica.states.values() for k in s.positions)

    # restart: the changelog replay does not bring the partner back
    assert ledger.stop() == 0, ledger.log_text()[-2000:]
    ledger.start()
    await eventually(lambda: up(ledger))
    await send(producer, stock(STAYING, 400, t0 + timedelta(minutes=1)), STAYING)
    # a late event of the removed partner is ignored after the restart too
    await send(producer, stock(LEAVING, 1, t0 + timedelta(minutes=2)), LEAVING)
    await eventually(lambda: (data_age(ledger, STAYING) or 1e9) < 5 * 60)
    await asyncio.sleep(2)
    assert data_age(ledger, LEAVING) is None, ledger.log_text()[-3000:]
    assert held_positions(ledger.metrics()) == before - 1
    assert len(alerts.values(of(LEAVING, "ShortageDetected"))) == 1
