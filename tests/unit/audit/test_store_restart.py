"""The log file: durable appends, restart continuity, no duplicates on re-delivery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.audit.batch import record_batch
from services.audit.records import SourceRecord
from services.audit.store import AuditLog, AuditLogError, verify_file
from services.audit.verify import Problem
from tests.unit.audit.helpers import ack, command, decision, order


def _append(log: AuditLog, records: list[SourceRecord]) -> int:
    result = record_batch(log.head, log.marks, records)
    log.append(result.entries, result.head, result.marks)
    return len(result.entries)


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_restart_continues_the_chain_without_gaps_or_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.log"
    first = [command(0), command(1), order(0, "klinik-b", "run-000000000001"), ack(7, "klinik-b")]
    with AuditLog(path) as log:
        assert _append(log, first) == 4
        assert log.head.next_seq == 5

    # "restart": a fresh writer on the same file; the last batch is re-delivered
    with AuditLog(path) as log:
        assert log.recovery.verified.ok and log.recovery.entries == 4
        assert log.head.next_seq == 5
        assert log.marks[("verbund.commands", 0)] == 1
        assert _append(log, first) == 0
        more = [command(1), command(2), decision(0, "run-000000000001", ["klinik-b"])]
        assert _append(log, more) == 2

    rows = _read(path)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    sources = [(r["source_topic"], r["source_partition"], r["source_offset"]) for r in rows]
    assert len(set(sources)) == len(sources)
    result = verify_file(path)
    assert result.ok and result.last_seq == 6


def test_three_restarts_interleaved(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for round_ in range(3):
        with AuditLog(path) as log:
            _append(log, [command(i) for i in range(round_ * 3, round_ * 3 + 4)])
    rows = _read(path)
    assert [r["source_offset"] for r in rows] == list(range(10))
    assert verify_file(path).ok


def test_torn_last_line_is_set_aside_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(0), command(1), command(2)])
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    torn = lines[-1][:30]
    path.write_bytes(b"".join(lines[:-1]) + torn)
    assert verify_file(path).problem is Problem.TRUNCATED

    with AuditLog(path) as log:
        assert log.recovery.torn_bytes == len(torn)
        assert log.head.next_seq == 3
        # offset 2 was never committed: it is re-delivered and recorded again
        assert _append(log, [command(2), command(3)]) == 2
    assert (tmp_path / "audit.log.torn").read_bytes() == torn + b"\n"
    assert verify_file(path).ok
    assert [r["seq"] for r in _read(path)] == [1, 2, 3, 4]


def test_missing_newline_after_a_complete_entry_is_completed(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(0), command(1)])
    path.write_bytes(path.read_bytes()[:-1])
    with AuditLog(path) as log:
        assert log.recovery.torn_bytes == 0 and log.head.next_seq == 3
        _append(log, [command(2)])
    assert verify_file(path).ok


def test_tampered_log_is_reported_on_open_and_appending_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(i) for i in range(5)])
    path.write_bytes(path.read_bytes().replace(b'"principal":"anna"', b'"principal":"eve"', 1))
    with AuditLog(path) as log:
        assert not log.recovery.verified.ok and log.recovery.verified.line == 1
        _append(log, [command(5)])
    result = verify_file(path)
    assert (result.line, result.problem) == (1, Problem.MODIFIED)


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path), pytest.raises(AuditLogError, match="in use"):
        AuditLog(path)


def test_forgotten_source_records_restarted_offsets(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(0), command(1)])
        log.forget_source(("verbund.commands", 0))
        assert _append(log, [command(0, run="run-000000000002")]) == 1
