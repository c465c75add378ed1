"""One bad record must not stop the audit: numbers that are not finite, values canonical JSON
cannot write, timestamps outside years 1-9999 and recording bugs each become an ``unparseable``
entry with the reason, the other records of the batch are recorded, the offsets are committed
and the chain still verifies."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.audit.batch import record_batch
from services.audit.chain import ChainHead, Entry
from services.audit.query import EntryFilter, parse_time, select, summary
from services.audit.records import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    SourceRecord,
    decode_json,
    iso_time,
    to_recorded,
)
from services.audit.service import AuditService
from services.audit.settings import AuditSettings
from services.audit.store import AuditLog, verify_file
from services.audit.verify import verify
from services.common.topics import COMMANDS, PARTNER_EVENTS
from tests.unit.audit.helpers import T0_MS, ack, command, lines

PARTNER = "klinikum-nord"
YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z


def _ack_bytes(**extra: Any) -> bytes:
    body = {
        "type": "OrderAcknowledged",
        "partner_id": PARTNER,
        "event_id": "ev-00000001",
        "occurred_at": "2026-03-02T12:00:00+00:00",
        "order_id": "order-0001",
        "accepted": True,
        "reason": None,
    }
    text = json.dumps(body)
    for name, literal in extra.items():  # raw literals json.dumps would not write
        text = text[:-1] + f', "{name}": {literal}}}'
    return text.encode()


# The record of the review: valid JSON whose number overflows a float to inf.
POISON_ACK = _ack_bytes(n="1e999")


def _partner_event(offset: int, value: bytes, timestamp_ms: int = T0_MS) -> SourceRecord:
    return SourceRecord(PARTNER_EVENTS.name, 0, offset, timestamp_ms, PARTNER.encode(), value)


def _on_commands(offset: int, value: bytes, timestamp_ms: int = T0_MS) -> SourceRecord:
    return SourceRecord(COMMANDS.name, 0, offset, timestamp_ms, b"run-1", value)


def _unparseable(entry: Entry, raw: bytes, *reason: str) -> None:
    assert entry["kind"] == "unparseable"
    assert base64.b64decode(entry["payload"]["base64"]) == raw
    for part in reason:
        assert part in entry["payload"]["error"], entry["payload"]["error"]


# --- (a) numbers that are not finite and other values canonical JSON cannot write --------------


def test_the_poisoned_acknowledgement_is_recorded_with_its_reason_and_the_batch_goes_on() -> None:
    records = [command(7), _partner_event(9, POISON_ACK), ack(10, PARTNER, partition=0)]
    result = record_batch(ChainHead(), {}, records)
    assert [e["kind"] for e in result.entries] == [
        "ApproveRun",
        "unparseable",
        "OrderAcknowledged",
    ]
    _unparseable(result.entries[1], POISON_ACK, "1e999", "not a finite number")
    assert result.entries[1]["source_offset"] == 9 and result.entries[1]["key"] == PARTNER
    assert result.commit == {(COMMANDS.name, 0): 8, (PARTNER_EVENTS.name, 0): 11}
    assert result.marks[(PARTNER_EVENTS.name, 0)] == 10
    assert not result.failures
    assert verify(lines(result.entries)).ok


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("1e999", "1e999"),
        ("-1e999", "-1e999"),
        ("1" * 400 + ".5", "not a finite number"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ('[1, {"deep": 2e400}]', "2e400"),
    ],
)
def test_numbers_that_are_not_finite_are_recorded_as_unparseable(literal: str, reason: str) -> None:
    raw = _ack_bytes(n=literal)
    for record in (_on_commands(1, raw), _partner_event(1, raw)):
        recorded = to_recorded(record)
        assert recorded is not None and recorded.kind == "unparseable"
        assert reason in recorded.payload["error"]
        assert base64.b64decode(recorded.payload["base64"]) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"n": ' + b"1" * 5000 + b"}", "digits"),  # over Python's int conversion limit
        (b'{"s": "\\ud800"}', "surrogates not allowed"),  # a lone surrogate: not UTF-8
    ],
)
def test_values_canonical_json_cannot_write_are_recorded_as_unparseable(
    raw: bytes, reason: str
) -> None:
    result = record_batch(ChainHead(), {}, [_on_commands(1, raw), command(2)])
    assert [e["kind"] for e in result.entries] == ["unparseable", "ApproveRun"]
    _unparseable(result.entries[0], raw, reason)
    assert verify(lines(result.entries)).ok


def test_decode_json_names_the_number() -> None:
    with pytest.raises(ValueError, match=r"number 1e999 is out of range"):
        decode_json(b'{"n": 1e999}')
    assert decode_json(b'{"n": 1e308, "m": -0.0}') == {"n": 1e308, "m": -0.0}


def test_a_partner_event_that_is_not_an_acknowledgement_stays_unaudited() -> None:
    stock = b'{"type": "StockReported", "partner_id": "klinikum-nord", "n": 1e999}'
    result = record_batch(ChainHead(), {}, [_partner_event(3, stock)])
    assert result.entries == [] and result.skipped["not_audited"] == 1
    assert result.commit == {(PARTNER_EVENTS.name, 0): 4}


# --- (b) timestamps outside years 1-9999 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp_ms", "at"),
    [
        (YEAR_10000_MS, "9999-12-31T23:59:59.999+00:00"),
        (10**17, "9999-12-31T23:59:59.999+00:00"),
        (2**63 - 1, "9999-12-31T23:59:59.999+00:00"),
        (MIN_TIMESTAMP_MS - 1, "0001-01-01T00:00:00.000+00:00"),
        (-(2**63), "0001-01-01T00:00:00.000+00:00"),
    ],
)
def test_a_timestamp_outside_the_years_1_9999_is_a_recorded_reason(
    timestamp_ms: int, at: str
) -> None:
    records = [
        _partner_event(5, _ack_bytes(), timestamp_ms=timestamp_ms),
        _on_commands(6, b'{"type": "TriggerProtocol"}', timestamp_ms=timestamp_ms),
        command(7),
    ]
    result = record_batch(ChainHead(), {}, records)
    assert [e["kind"] for e in result.entries] == ["unparseable", "unparseable", "ApproveRun"]
    for entry, record in zip(result.entries[:2], records[:2], strict=True):
        assert record.value is not None
        _unparseable(entry, record.value, f"record timestamp {timestamp_ms} ms", "years 1-9999")
        assert entry["at"] == at
        parse_time(entry["at"])  # still a time `verbund audit show --since` can compare
    assert verify(lines(result.entries)).ok
    shown = list(select(result.entries, EntryFilter(kind="unparseable")))
    assert "years 1-9999" in summary(shown[0], width=500)


def test_both_reasons_are_recorded() -> None:
    recorded = to_recorded(_partner_event(1, POISON_ACK, timestamp_ms=YEAR_10000_MS))
    assert recorded is not None and recorded.kind == "unparseable"
    assert "1e999" in recorded.payload["error"] and "years 1-9999" in recorded.payload["error"]


def test_timestamps_at_the_edges_are_recorded_exactly() -> None:
    assert iso_time(MAX_TIMESTAMP_MS) == "9999-12-31T23:59:59.999+00:00"
    assert iso_time(MIN_TIMESTAMP_MS) == "0001-01-01T00:00:00.000+00:00"
    assert iso_time(-5) == "1969-12-31T23:59:59.995+00:00"
    assert iso_time(1_700_000_000_123) == "2023-11-14T22:13:20.123+00:00"
    recorded = to_recorded(_on_commands(1, b'{"type": "X"}', timestamp_ms=MAX_TIMESTAMP_MS))
    assert recorded is not None and recorded.kind == "X"


# --- a record that fails anyway ---------------------------------------------------------------


def test_a_record_that_fails_to_record_is_kept_as_unparseable_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = to_recorded

    def flaky(record: SourceRecord) -> Any:
        if record.offset == 2:
            raise RuntimeError("boom")
        return real(record)

    monkeypatch.setattr("services.audit.batch.to_recorded", flaky)
    records = [command(1), command(2), command(3)]
    result = record_batch(ChainHead(), {}, records)
    assert [e["kind"] for e in result.entries] == ["ApproveRun", "unparseable", "ApproveRun"]
    assert records[1].value is not None
    _unparseable(result.entries[1], records[1].value, "could not record it", "boom")
    assert [(f.topic, f.offset) for f in result.failures] == [(COMMANDS.name, 2)]
    assert result.commit == {(COMMANDS.name, 0): 4}
    assert verify(lines(result.entries)).ok


# --- the service: the offset is committed, a restart does not meet the record again ------------


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append(value)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class _FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def test_the_service_records_the_poisoned_batch_and_commits_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    records = [
        command(7),
        _partner_event(9, POISON_ACK),
        _partner_event(10, _ack_bytes(), timestamp_ms=YEAR_10000_MS),
        ack(11, PARTNER, partition=0),
    ]
    with AuditLog(path) as audit_log:
        service = AuditService(AuditSettings(audit_log=path), "unused:9092", audit_log)
        producer, consumer = _FakeProducer(), _FakeConsumer()
        service.producer = producer
        service.consumer = consumer
        await service._handle(records)
    assert consumer.commits == [
        {TopicPartition(COMMANDS.name, 0): 8, TopicPartition(PARTNER_EVENTS.name, 0): 12}
    ]
    assert len(producer.sent) == 4
    assert verify_file(path).ok
    kinds = [json.loads(line)["kind"] for line in path.read_bytes().splitlines()]
    assert kinds == ["ApproveRun", "unparseable", "unparseable", "OrderAcknowledged"]
    with AuditLog(path) as reopened:  # a re-delivery after a restart is a no-op
        assert reopened.recovery.verified.ok
        again = record_batch(reopened.head, reopened.marks, records)
        assert again.entries == [] and again.skipped["duplicate"] == 4
