"""The partner bridge as a real process on the embedded broker: a partner's own events topic
to the shared events topic (and on to the ledger), dead letters for what a partner may not
send, orders to the recipient's own topic only, offsets kept across a restart, partners
added to the alliance file picked up while running."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from services.cli.main import main
from services.common.topics import (
    DEAD_LETTERS,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    partner_events_topic,
    partner_orders_topic,
)
from tests.integration.kafka_helpers import ServiceProcess, TopicCollector, dumps, metric_value

pytestmark = pytest.mark.integration

A = "brg-klinik-a"
B = "brg-werk-b"
C = "brg-stadt-c"  # joins the alliance while the bridge runs
MATERIAL = "NACL-BRIDGE-500ML"


def _partner(pid: str, criticality: str = "hospital") -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid.title(),
        "sector": "hospital" if criticality == "hospital" else "manufacturing",
        "region": "DE-BY",
        "criticality": criticality,
        "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
    }


def _write_alliance(path: Path, partners: list[str]) -> Path:
    data = {"name": "Bridge test", "partners": [_partner(p) for p in partners]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data), encoding="utf-8")
    tmp.replace(path)
    return path


def stock(partner: str, on_hand: float = 120.0, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "StockReported",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "partner_id": partner,
        "occurred_at": datetime.now(UTC).isoformat(),
        "positions": [
            {
                "site_id": "s1",
                "material_id": MATERIAL,
                "unit": "pcs",
                "on_hand": on_hand,
                "safety_stock": 50.0,
                "daily_consumption": 10.0,
            }
        ],
    }
    event.update(overrides)
    return event


def order(recipient: str) -> dict[str, Any]:
    return {
        "type": "OrderIssued",
        "order_id": f"run-{uuid.uuid4().hex[:12]}:o-1",
        "recipient": recipient,
        "must_answer": True,
        "kind": "transfer",
        "order": {"material": MATERIAL, "quantity": 10},
    }


@pytest.fixture(scope="module")
def alliance_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_alliance(tmp_path_factory.mktemp("bridge") / "alliance.yaml", [A, B])


def _bridge(bootstrap: str, alliance_file: Path, group: str) -> ServiceProcess:
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(alliance_file),
        "VERBUND_DATA_DIR": str(alliance_file.parent),
        "VERBUND_BRIDGE_GROUP_ID": group,
        "VERBUND_BRIDGE_REFRESH_INTERVAL": "0.5",
    }
    return ServiceProcess(["bridge"], env, alliance_file.parent / "bridge.log")


async def _until(what: str, probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def group() -> str:
    return f"bridge-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ledger(bootstrap: str, alliance_file: Path) -> Iterator[ServiceProcess]:
    """A ledger reading the shared events topic, as in the stack (started early: its group
    join takes a few seconds)."""
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(alliance_file),
        "VERBUND_DATA_DIR": str(alliance_file.parent / "ledger"),
        "VERBUND_GROUP_ID": f"ledger-bridge-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
    }
    service = ServiceProcess(["ledger"], env, alliance_file.parent / "ledger.log").start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
async def bridge(
    bootstrap: str, alliance_file: Path, group: str, ledger: ServiceProcess
) -> AsyncIterator[ServiceProcess]:
    service = _bridge(bootstrap, alliance_file, group).start()
    try:
        await _until(
            "the bridge serving 2 partners",
            lambda: metric_value(service.metrics(), "verbund_bridge_partners") == 2,
        )
        yield service
    finally:
        assert service.stop() == 0, service.log_text()[-3000:]


@pytest.fixture(scope="module")
async def collectors(bridge: ServiceProcess, bootstrap: str) -> AsyncIterator[dict[str, Any]]:
    """Every record of the topics the bridge writes (its partner topics exist by now)."""
    topics = [
        PARTNER_EVENTS.name,
        DEAD_LETTERS.name,
        partner_orders_topic(A),
        partner_orders_topic(B),
    ]
    started = {t: await TopicCollector(bootstrap, t).start() for t in topics}
    yield started
    for collector in started.values():
        await collector.stop()


def _from(partner: str) -> Any:
    return lambda v: v.get("partner_id") == partner


def _letters(collector: TopicCollector, source: str) -> list[dict[str, Any]]:
    return collector.values(lambda v: v.get("source_topic") == source)


async def test_checked_forwarding_and_dead_letters(
    bridge: ServiceProcess, collectors: dict[str, Any], producer: AIOKafkaProducer
) -> None:
    shared, dead = collectors[PARTNER_EVENTS.name], collectors[DEAD_LETTERS.name]
    own = partner_events_topic(A)
    first, last = stock(A), stock(A, on_hand=110.0)
    forged = stock(B)  # A writes an event claiming to be B
    removal = {
        "type": "PartnerRemoved",
        "command_id": f"cmd-{uuid.uuid4().hex[:16]}",
        "partner_id": A,
        "requested_by": "mallory",
        "reason": "forged",
        "at": datetime.now(UTC).isoformat(),
    }
    values = [dumps(first), dumps(forged), dumps(removal), b"{not json at all", dumps(last)]
    sent = [await producer.send_and_wait(own, v, key=b"any-key") for v in values]

    forwarded = await shared.wait_for(_from(A), count=2, timeout=30)
    assert [f["event_id"] for f in forwarded] == [first["event_id"], last["event_id"]]
    records = [r for r in shared.records if r.value in (values[0], values[4])]
    assert [r.value for r in records] == [values[0], values[4]]  # original bytes, in order
    assert {r.key for r in records} == {A.encode()}  # keyed by the topic's owner
    assert not shared.values(_from(B)), "the forged event reached the shared topic"

    letters = await dead.wait_for(lambda v: v.get("source_topic") == own, count=3, timeout=30)
    by_offset = {letter["source_offset"]: letter for letter in letters}
    assert set(by_offset) == {m.offset for m in sent[1:4]}
    expected = [
        (sent[1], values[1], "partner_mismatch", B),
        (sent[2], values[2], "type_not_allowed", "PartnerRemoved"),
        (sent[3], values[3], "invalid_json", "not valid JSON"),
    ]
    for metadata, value, reason, detail in expected:
        letter = by_offset[metadata.offset]
        assert letter["reason"].startswith(f"{reason}: ") and detail in letter["reason"]
        assert base64.b64decode(letter["original_base64"]) == value
        assert (letter["source_partition"], letter["source_key"]) == (metadata.partition, "any-key")
        assert letter["service"] == "bridge"

    def counted() -> str | None:
        text = bridge.metrics()
        done = metric_value(text, "verbund_bridge_forwarded_total", direction="inbound") or 0
        return text if done >= 2 else None

    text = await _until("the forwards counted", counted)
    for reason in ("partner_mismatch", "type_not_allowed", "invalid_json"):
        labels = {"direction": "inbound", "reason": reason}
        assert metric_value(text, "verbund_bridge_dead_lettered_total", **labels) == 1, reason


async def test_orders_reach_only_the_recipients_topic(
    bridge: ServiceProcess, collectors: dict[str, Any], producer: AIOKafkaProducer
) -> None:
    for_a, for_nobody = order(A), order("brg-nobody")
    value = dumps(for_a)
    await producer.send_and_wait(PARTNER_ORDERS.name, value, key=A.encode())
    await producer.send_and_wait(PARTNER_ORDERS.name, dumps(for_nobody), key=b"brg-nobody")

    orders_a = collectors[partner_orders_topic(A)]
    [copied] = await orders_a.wait_for(lambda v: v["order_id"] == for_a["order_id"], timeout=30)
    assert copied == for_a
    [record] = [r for r in orders_a.records if r.value == value]
    assert record.key == A.encode()
    [letter] = await collectors[DEAD_LETTERS.name].wait_for(
        lambda v: (
            v.get("source_topic") == PARTNER_ORDERS.name
            and base64.b64decode(v["original_base64"]) == dumps(for_nobody)
        ),
        timeout=30,
    )
    assert letter["reason"].startswith("unknown_recipient: ")
    await asyncio.sleep(0.5)  # B's topic is read to its end by now
    assert collectors[partner_orders_topic(B)].records == []
    assert not orders_a.values(lambda v: v["order_id"] == for_nobody["order_id"])


async def test_a_restart_goes_on_after_the_committed_offsets(
    bridge: ServiceProcess,
    collectors: dict[str, Any],
    producer: AIOKafkaProducer,
    bootstrap: str,
    alliance_file: Path,
    group: str,
) -> None:
    shared = collectors[PARTNER_EVENTS.name]
    before = len(shared.values(_from(A)))
    assert before >= 2
    assert bridge.stop() == 0, "the bridge did not stop cleanly on SIGTERM"
    assert '"event": "bridge_stopped"' in bridge.log_text()
    event = stock(A, on_hand=100.0)
    await producer.send_and_wait(partner_events_topic(A), dumps(event))
    bridge.start()
    [again] = await shared.wait_for(lambda v: v.get("event_id") == event["event_id"], timeout=30)
    assert again["partner_id"] == A
    await asyncio.sleep(1.0)
    assert len(shared.values(_from(A))) == before + 1, "records forwarded twice after restart"


async def test_a_partner_added_to_the_alliance_is_served_without_restart(
    bridge: ServiceProcess,
    collectors: dict[str, Any],
    producer: AIOKafkaProducer,
    alliance_file: Path,
) -> None:
    _write_alliance(alliance_file, [A, B, C])
    await _until(
        "the bridge serving 3 partners",
        lambda: metric_value(bridge.metrics(), "verbund_bridge_partners") == 3,
    )
    event = stock(C)
    await producer.send_and_wait(partner_events_topic(C), dumps(event))
    [forwarded] = await collectors[PARTNER_EVENTS.name].wait_for(
        lambda v: v.get("event_id") == event["event_id"], timeout=30
    )
    assert forwarded["partner_id"] == C


async def test_an_event_through_the_bridge_reaches_the_ledger(
    bridge: ServiceProcess, alerts: TopicCollector, producer: AIOKafkaProducer
) -> None:
    """Partner topic -> bridge -> verbund.partner.events -> ledger: a stock-out of A is a
    critical shortage (the forwarded record passes the ledger's key and schema checks; A's
    earlier stock reports, forwarded the same way, may have made it a watch first)."""
    await producer.send_and_wait(partner_events_topic(A), dumps(stock(A, on_hand=0.0)))
    found = await alerts.wait_for(
        lambda v: (
            v.get("type") == "ShortageDetected"
            and v.get("partner_id") == A
            and v.get("material_id") == MATERIAL
            and v.get("severity") == "critical"
        ),
        timeout=90,
    )
    assert "stock_out" in found[0]["causes"]


def test_onboard_creates_the_partners_topics(
    bootstrap: str, alliance_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    partner = "brg-onboard"
    path = alliance_file.parent / "onboard-alliance.yaml"
    _write_alliance(path, [partner])
    monkeypatch.setenv("VERBUND_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("VERBUND_ALLIANCE_FILE", str(path))
    monkeypatch.delenv("VERBUND_SETTINGS_FILE", raising=False)
    assert main(["partner", "onboard", partner]) == 0
    out = capsys.readouterr().out
    for topic in (partner_events_topic(partner), partner_orders_topic(partner)):
        assert f"# topic {topic} (1 partition): created" in out
    assert main(["partner", "onboard", partner]) == 0
    assert "): exists" in capsys.readouterr().out
