"""The bridge's Kafka adapter with fake clients: commit only after every forward and dead
letter is acknowledged, order kept across retries, refused forwards dead-lettered, a routing
bug dead-letters the record instead of stopping the bridge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from schemas.alerts import DeadLetter
from services.bridge import service as service_module
from services.bridge.service import PartnerBridge, _stamp
from services.bridge.settings import BridgeSettings
from services.common.topics import DEAD_LETTERS, PARTNER_EVENTS, partner_events_topic

A = "klinik-a"
EVENTS = TopicPartition(partner_events_topic(A), 0)


class FakeProducer:
    def __init__(self, fail: Callable[[int, str], BaseException | None] = lambda n, t: None):
        self.fail = fail
        self.sent: list[tuple[str, bytes, bytes]] = []  # every attempt, in order
        self.acked: list[tuple[str, bytes]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes, timestamp_ms: int | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        error = self.fail(len(self.sent), topic)
        self.sent.append((topic, key, value))
        if error is None:
            self.acked.append((topic, value))
            future.set_result(None)
        else:
            future.set_exception(error)
        return future


class FakeConsumer:
    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.commits: list[tuple[dict[TopicPartition, int], int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append((dict(offsets), len(self.producer.acked)))


def _bridge(tmp_path: Path, producer: FakeProducer) -> tuple[PartnerBridge, FakeConsumer]:
    partner = {
        "id": A,
        "name": "A",
        "sector": "hospital",
        "region": "DE-BY",
        "criticality": "hospital",
        "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
    }
    path = tmp_path / "alliance.yaml"
    path.write_text(yaml.safe_dump({"name": "T", "partners": [partner]}), encoding="utf-8")
    bridge = PartnerBridge(BridgeSettings(alliance_file=path), "unused:9092", path)
    bridge.members = frozenset({A})
    bridge._stamp = _stamp(path)
    consumer = FakeConsumer(producer)
    bridge.producer = producer  # type: ignore[assignment]
    bridge.consumer = consumer  # type: ignore[assignment]
    return bridge, consumer


def _event(n: int, partner: str = A) -> bytes:
    return json.dumps({"type": "StockReported", "partner_id": partner, "n": n}).encode()


def _records(*values: bytes) -> list[Any]:
    return [
        SimpleNamespace(offset=10 + i, key=None, value=v, timestamp=1_700_000_000_000)
        for i, v in enumerate(values)
    ]


async def test_offsets_are_committed_after_every_send_is_acknowledged(tmp_path: Path) -> None:
    producer = FakeProducer()
    bridge, consumer = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(_event(1), b"{bad", _event(2))})
    assert [t for t, _ in producer.acked] == [
        PARTNER_EVENTS.name,
        DEAD_LETTERS.name,
        PARTNER_EVENTS.name,
    ]
    assert consumer.commits == [({EVENTS: 13}, 3)]  # after the 3 acknowledgements


async def test_a_retriable_failure_resends_it_and_everything_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module.asyncio, "sleep", _no_sleep)
    producer = FakeProducer(lambda n, t: KafkaTimeoutError() if n == 1 else None)
    bridge, consumer = _bridge(tmp_path, producer)
    values = [_event(1), _event(2), _event(3)]
    await bridge.handle({EVENTS: _records(*values)})
    assert [v for _, _, v in producer.sent] == [
        values[0],
        values[1],
        values[2],
        values[1],
        values[2],
    ]
    acked = [v for _, v in producer.acked]
    assert acked[-2:] == values[1:]  # the last word per partner is the latest event
    assert consumer.commits == [({EVENTS: 13}, len(producer.acked))]


async def test_a_forward_refused_for_good_is_dead_lettered(tmp_path: Path) -> None:
    refused = MessageSizeTooLargeError()
    producer = FakeProducer(lambda n, t: refused if t == PARTNER_EVENTS.name and n == 0 else None)
    bridge, consumer = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(_event(1))})
    [(topic, letter)] = producer.acked
    assert topic == DEAD_LETTERS.name
    parsed = DeadLetter.model_validate_json(letter)
    assert parsed.reason.startswith("forward_failed: ") and parsed.source_offset == 10
    assert consumer.commits == [({EVENTS: 11}, 1)]


async def test_a_routing_bug_dead_letters_the_record_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(service_module, "route_inbound", broken)
    producer = FakeProducer()
    bridge, consumer = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(_event(1))})
    [(topic, letter)] = producer.acked
    assert topic == DEAD_LETTERS.name
    assert DeadLetter.model_validate_json(letter).reason.startswith("bridge_error: ")
    assert consumer.commits == [({EVENTS: 11}, 1)]


async def test_a_dead_letter_the_broker_refuses_is_logged_and_skipped(tmp_path: Path) -> None:
    producer = FakeProducer(
        lambda n, t: MessageSizeTooLargeError() if t == DEAD_LETTERS.name else None
    )
    bridge, consumer = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(b"{bad", _event(1))})
    assert [t for t, _ in producer.acked] == [PARTNER_EVENTS.name]
    assert consumer.commits == [({EVENTS: 12}, 1)]


async def _no_sleep(delay: float) -> None:
    return None


async def test_an_outage_stalls_the_bridge_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module.asyncio, "sleep", _no_sleep)
    outage = {0, 1, 2, 3, 4, 5}  # the first six attempts time out, whatever the topic
    producer = FakeProducer(lambda n, t: KafkaTimeoutError() if n in outage else None)
    bridge, consumer = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(b"{bad", _event(1))})
    assert [t for t, _ in producer.acked] == [DEAD_LETTERS.name, PARTNER_EVENTS.name]
    assert consumer.commits == [({EVENTS: 12}, 2)]


async def test_an_unreachable_broker_while_adding_partners_is_retried_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.common.broker import BrokerError

    async def unreachable(*args: Any, **kwargs: Any) -> list[str]:
        raise BrokerError("Kafka broker at unused:9092 is not reachable")

    monkeypatch.setattr(service_module, "ensure_topics", unreachable)
    bridge, _ = _bridge(tmp_path, FakeProducer())
    path = bridge.alliance_file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["partners"].append({**data["partners"][0], "id": "werk-b"})
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    await bridge.refresh()  # logged, not raised
    assert bridge.members == {A}
    assert bridge._stamp != _stamp(path)  # so the next check reads the file again
    with pytest.raises(BrokerError):
        await bridge.refresh(force=True)  # at start it is fatal
