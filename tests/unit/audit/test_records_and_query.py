"""What is recorded from which topic, and the filters of `verbund audit show`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from services.audit.batch import record_batch
from services.audit.chain import ChainHead
from services.audit.query import EntryFilter, parse_time, select, summary
from services.audit.records import SourceRecord, to_recorded
from services.common.topics import COMMANDS, PARTNER_EVENTS, PROTOCOLS, RUNS
from tests.unit.audit.helpers import ack, command, decision, order


def _raw(topic: str, value: bytes | None, offset: int = 0) -> SourceRecord:
    return SourceRecord(topic, 0, offset, 1_790_000_000_000, b"k", value)


def test_only_acknowledgements_are_recorded_from_partner_events() -> None:
    stock = json.dumps({"type": "StockReported", "partner_id": "werk-a"}).encode()
    assert to_recorded(_raw(PARTNER_EVENTS.name, stock)) is None
    assert to_recorded(_raw(PARTNER_EVENTS.name, b"{broken")) is None
    recorded = to_recorded(ack(3, "klinik-b"))
    assert recorded is not None and recorded.kind == "OrderAcknowledged"


def test_invalid_messages_are_recorded_as_unparseable_with_their_bytes() -> None:
    for raw in (b"{not json", b"\xff\xfe", b'{"q": NaN}', b""):
        recorded = to_recorded(_raw(COMMANDS.name, raw))
        assert recorded is not None and recorded.kind == "unparseable"
        assert base64.b64decode(recorded.payload["base64"]) == raw
    tombstone = to_recorded(_raw(RUNS.name, None))
    assert tombstone is not None and tombstone.kind == "unparseable"


def test_kind_comes_from_type_or_the_topic() -> None:
    recorded = to_recorded(_raw(PROTOCOLS.name, b'{"protocol_id": "p1", "version": 3}'))
    assert recorded is not None and recorded.kind == "protocol_version"
    recorded = to_recorded(_raw(RUNS.name, b'{"type": "RunUpdated", "state": "solving"}'))
    assert recorded is not None and recorded.kind == "RunUpdated"
    recorded = to_recorded(_raw(RUNS.name, b'{"type": "bad kind!"}'))
    assert recorded is not None and recorded.kind == "run"
    recorded = to_recorded(_raw(RUNS.name, b"[1, 2]"))
    assert recorded is not None and recorded.kind == "run" and recorded.payload == [1, 2]


def test_skipped_records_are_still_committed() -> None:
    stock = SourceRecord(PARTNER_EVENTS.name, 1, 8, 0, b"werk-a", b'{"type":"StockReported"}')
    result = record_batch(ChainHead(), {}, [ack(7, "klinik-b"), stock])
    assert len(result.entries) == 1
    assert result.commit[(PARTNER_EVENTS.name, 1)] == 9
    assert result.skipped["not_audited"] == 1


def _sample() -> list[dict[str, object]]:
    records = [
        command(0, run="run-00000000000a"),
        command(1, run="run-00000000000b"),
        order(0, "klinik-b", "run-00000000000a"),
        decision(0, "run-00000000000a", ["klinik-b", "werk-a"]),
        ack(5, "stadtwerk-c"),
    ]
    return record_batch(ChainHead(), {}, records).entries


def test_filter_by_run() -> None:
    found = list(select(_sample(), EntryFilter(run="run-00000000000a")))
    assert [e["kind"] for e in found] == ["ApproveRun", "OrderIssued", "DecisionPublished"]


def test_filter_by_partner_anywhere_in_the_payload() -> None:
    found = list(select(_sample(), EntryFilter(partner="klinik-b")))
    assert [e["kind"] for e in found] == ["OrderIssued", "DecisionPublished"]
    found = list(select(_sample(), EntryFilter(partner="werk-a")))
    assert [e["kind"] for e in found] == ["OrderIssued", "DecisionPublished"]
    found = list(select(_sample(), EntryFilter(partner="stadtwerk-c")))
    assert [e["kind"] for e in found] == ["OrderAcknowledged"]
    assert list(select(_sample(), EntryFilter(partner="nobody"))) == []


def test_filter_by_time_and_kind() -> None:
    entries = _sample()
    since = parse_time("2026-09-21T14:13:30")  # after the commands (14:13:20, 14:13:21)
    found = list(select(entries, EntryFilter(since=since)))
    assert {e["kind"] for e in found} == {"OrderIssued", "DecisionPublished", "OrderAcknowledged"}
    until = datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC)
    assert [e["seq"] for e in select(entries, EntryFilter(until=until))] == [1]
    assert [e["seq"] for e in select(entries, EntryFilter(kind="OrderAcknowledged"))] == [5]


def test_summary_is_short_and_readable() -> None:
    first = _sample()[0]
    assert summary(first) == "run_id=run-00000000000a principal=anna"
    assert len(summary(first, width=10)) == 10


def test_run_filter_uses_the_key_of_run_keyed_topics() -> None:
    trigger = SourceRecord(
        COMMANDS.name, 0, 9, 0, b"run-00000000000c", b'{"type": "TriggerProtocol"}'
    )
    other = SourceRecord(PROTOCOLS.name, 0, 1, 0, b"run-00000000000c", b'{"type": "X"}')
    entries = record_batch(ChainHead(), {}, [trigger, other]).entries
    found = list(select(entries, EntryFilter(run="run-00000000000c")))
    assert [e["kind"] for e in found] == ["TriggerProtocol"]
