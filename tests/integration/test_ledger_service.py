"""The ledger as a real process on the embedded broker: alerts, dead letters, restarts."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.common.topics import DEAD_LETTERS, PARTNER_EVENTS
from tests.integration.kafka_helpers import (
    ServiceProcess,
    TopicCollector,
    dumps,
    metric_value,
)

pytestmark = pytest.mark.integration

PARTNERS = {
    "hosp-alerts": "hospital",
    "hosp-confluent": "hospital",
    "werk-dlq": "normal",
    "hosp-dup": "hospital",
    "stadt-restart": "critical_infrastructure",
}
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _alliance_file(directory: Path) -> Path:
    partners = [
        {
            "id": pid,
            "name": pid.title(),
            "sector": "hospital" if crit == "hospital" else "manufacturing",
            "region": "DE-BY",
            "criticality": crit,
            "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
        }
        for pid, crit in PARTNERS.items()
    ]
    path = directory / "alliance.yaml"
    path.write_text(yaml.safe_dump({"name": "Test alliance", "partners": partners}))
    return path


@pytest.fixture(scope="module")
def ledger(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    directory = tmp_path_factory.mktemp("ledger")
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(_alliance_file(directory)),
        "VERBUND_GROUP_ID": f"ledger-test-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
    }
    service = ServiceProcess(["ledger"], env, directory / "ledger.log").start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
async def dead_letters(bootstrap: str) -> AsyncIterator[TopicCollector]:
    collector = await TopicCollector(bootstrap, DEAD_LETTERS.name).start()
    yield collector
    await collector.stop()


def stock(partner: str, on_hand: float, at: datetime, **overrides: Any) -> dict[str, Any]:
    position = {
        "site_id": "s1",
        "material_id": "NACL-500ML",
        "unit": "pcs",
        "on_hand": on_hand,
        "safety_stock": 50.0,
        "daily_consumption": 10.0,
    }
    position.update(overrides)
    return {
        "type": "StockReported",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "partner_id": partner,
        "occurred_at": at.isoformat(),
        "positions": [position],
    }


async def send(producer: AIOKafkaProducer, event: dict[str, Any] | bytes, key: str | None) -> Any:
    value = event if isinstance(event, bytes) else dumps(event)
    return await producer.send_and_wait(
        PARTNER_EVENTS.name, value, key=key.encode() if key is not None else None
    )


def held_positions(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("verbund_ledger_positions{")
    )


def of(partner: str, kind: str) -> Any:
    return lambda a: a.get("partner_id") == partner and a.get("type") == kind


async def test_shortage_detected_once_then_resolved(ledger, alerts, producer) -> None:
    partner = "hosp-alerts"
    await send(producer, stock(partner, 5, T0), partner)
    [detected] = await alerts.wait_for(of(partner, "ShortageDetected"), timeout=90)
    assert detected["severity"] == "critical"
    assert set(detected["causes"]) >= {"low_coverage", "below_safety_stock"}
    assert detected["coverage_days"] == pytest.approx(0.5)
    # the same state again: no second alert
    await send(producer, stock(partner, 5, T0 + timedelta(minutes=1)), partner)
    await send(producer, stock(partner, 1000, T0 + timedelta(minutes=2)), partner)
    [resolved] = await alerts.wait_for(of(partner, "ShortageResolved"), timeout=30)
    assert resolved["previous_severity"] == "critical"
    assert len(alerts.values(of(partner, "ShortageDetected"))) == 1


async def test_need_from_confluent_kafka_client(ledger, alerts, bootstrap) -> None:
    from confluent_kafka import Producer

    partner = "hosp-confluent"
    need = {
        "type": "NeedReported",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "partner_id": partner,
        "occurred_at": T0.isoformat(),
        "need_id": "need-1",
        "site_id": "s1",
        "material_id": "PROPOFOL-20ML",
        "unit": "pcs",
        "quantity": 300,
        "needed_by": (T0.date() + timedelta(days=30)).isoformat(),
        "criticality": "hospital",
    }
    client = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    client.produce(PARTNER_EVENTS.name, dumps(need), key=partner.encode())
    assert client.flush(15) == 0
    [detected] = await alerts.wait_for(of(partner, "ShortageDetected"), timeout=90)
    assert detected["causes"] == ["need_reported"]
    assert detected["need_quantity"] == 300
    assert detected["severity"] == "shortage"


BAD_INPUTS: list[tuple[str, bytes | None, str | None, str]] = [
    ("invalid json", b"{not json", "werk-dlq", "invalid_json"),
    ("empty value", b"", "werk-dlq", "empty_message"),
    ("price field", None, "werk-dlq", "invalid_event"),
    ("negative quantity", None, "werk-dlq", "invalid_event"),
    ("naive timestamp", None, "werk-dlq", "invalid_event"),
    ("key is another partner", None, "hosp-alerts", "key_mismatch"),
    ("unknown partner", None, "nobody-here", "unknown_partner"),
    ("unknown site", None, "werk-dlq", "unknown_site"),
]


def _bad_value(name: str) -> bytes:
    event = stock("werk-dlq", 100, T0)
    if name == "price field":
        event["positions"][0]["unit_price"] = 3.5
    elif name == "negative quantity":
        event["positions"][0]["on_hand"] = -1
    elif name == "naive timestamp":
        event["occurred_at"] = "2026-11-20T08:00:00"
    elif name == "unknown partner":
        event["partner_id"] = "nobody-here"
    elif name == "unknown site":
        event["positions"][0]["site_id"] = "elsewhere"
    return dumps(event)


async def test_bad_messages_go_to_dead_letters_and_processing_continues(
    ledger, alerts, dead_letters, producer
) -> None:
    sent: dict[str, tuple[int, int, bytes, str]] = {}
    for name, value, key, reason in BAD_INPUTS:
        raw = value if value is not None else _bad_value(name)
        meta = await send(producer, raw, key)
        sent[name] = (meta.partition, meta.offset, raw, reason)
    partner = "werk-dlq"
    await send(producer, stock(partner, 0, T0), partner)  # valid: stock-out
    await alerts.wait_for(of(partner, "ShortageDetected"), timeout=90)
    letters = await dead_letters.wait_for(
        lambda d: (
            d.get("source_topic") == PARTNER_EVENTS.name
            and any(
                (d["source_partition"], d["source_offset"]) == (p, o)
                for p, o, _, _ in sent.values()
            )
        ),
        count=len(sent),
        timeout=30,
    )
    by_offset = {(d["source_partition"], d["source_offset"]): d for d in letters}
    for name, (partition, offset, raw, reason) in sent.items():
        letter = by_offset[(partition, offset)]
        assert letter["reason"].startswith(reason), (name, letter["reason"])
        assert base64.b64decode(letter["original_base64"]) == raw, name
    assert "positions.0.unit_price" in by_offset[sent["price field"][:2]]["reason"]
    assert "positions.0.on_hand" in by_offset[sent["negative quantity"][:2]]["reason"]
    assert "occurred_at" in by_offset[sent["naive timestamp"][:2]]["reason"]
    assert ledger.alive


async def test_duplicates_and_older_events_change_nothing(ledger, alerts, producer) -> None:
    partner = "hosp-dup"
    first = stock(partner, 5, T0 + timedelta(hours=1))
    await send(producer, first, partner)
    await alerts.wait_for(of(partner, "ShortageDetected"), timeout=90)
    before = ledger.metrics()
    # an exact duplicate (same event id, different content) and an older export
    duplicate = dict(first, positions=[dict(first["positions"][0], on_hand=5000)])
    await send(producer, duplicate, partner)
    await send(producer, stock(partner, 5000, T0), partner)
    marker = stock(partner, 4, T0 + timedelta(hours=2))
    await send(producer, marker, partner)  # still critical: no alert expected either
    await asyncio.sleep(3)
    assert alerts.values(of(partner, "ShortageResolved")) == []
    after = ledger.metrics()
    dup = metric_value(after, "verbund_events_ignored_total", reason="duplicate") or 0
    stale = metric_value(after, "verbund_events_ignored_total", reason="out_of_order") or 0
    assert (
        dup - (metric_value(before, "verbund_events_ignored_total", reason="duplicate") or 0) >= 1
    )
    assert (
        stale - (metric_value(before, "verbund_events_ignored_total", reason="out_of_order") or 0)
        >= 1
    )


async def test_state_survives_a_restart(ledger, alerts, producer) -> None:
    partner = "stadt-restart"
    base = stock(partner, 40, T0)  # below safety stock (50), coverage 4 days: shortage
    await send(producer, base, partner)
    [first] = await alerts.wait_for(of(partner, "ShortageDetected"), timeout=90)
    assert first["severity"] == "shortage"
    positions_before = held_positions(ledger.metrics())
    assert ledger.stop() == 0, ledger.log_text()[-2000:]
    ledger.start()
    # a replay of an event seen before the restart is still a duplicate ...
    await send(producer, dict(base, positions=[dict(base["positions"][0], on_hand=9999)]), partner)
    # ... and worsening reports the severity held before the restart
    await send(producer, stock(partner, 10, T0 + timedelta(hours=1)), partner)
    found = await alerts.wait_for(of(partner, "ShortageDetected"), count=2, timeout=120)
    assert found[1]["severity"] == "critical"
    assert found[1]["previous_severity"] == "shortage"
    assert alerts.values(of(partner, "ShortageResolved")) == []
    # every partner's positions came back, not only those touched after the restart
    assert positions_before >= 4
    for _ in range(50):
        if held_positions(ledger.metrics()) == positions_before:
            break
        await asyncio.sleep(0.2)
    assert held_positions(ledger.metrics()) == positions_before


async def test_metrics_describe_the_work(ledger) -> None:
    text = ledger.metrics()
    assert (metric_value(text, "verbund_events_ingested_total", type="StockReported") or 0) >= 1
    assert (metric_value(text, "verbund_positions_ingested_total") or 0) >= 1
    assert "verbund_ledger_processing_latency_seconds_bucket" in text
    assert metric_value(text, "verbund_partner_data_age_seconds", partner="stadt-restart")
    assert metric_value(text, "verbund_open_shortages", severity="critical", material="NACL-500ML")
