"""A source partition whose topic was recreated (offsets restart, the service forgets its
de-duplication mark): the log stays verifiable, and after an audit restart the new topic's
records are not skipped as duplicates of the old topic's."""

from __future__ import annotations

from pathlib import Path

from services.audit.batch import record_batch
from services.audit.records import SourceRecord
from services.audit.store import AuditLog, verify_file
from services.audit.verify import Problem, verify
from tests.unit.audit.helpers import command

NEW = "run-000000000002"


def _append(log: AuditLog, records: list[SourceRecord]) -> int:
    result = record_batch(log.head, log.marks, records)
    log.append(result.entries, result.head, result.marks)
    return len(result.entries)


def test_a_forgotten_source_is_not_reported_as_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        assert _append(log, [command(0), command(1), command(2)]) == 3
        log.forget_source(("verbund.commands", 0))
        assert _append(log, [command(0, run=NEW)]) == 1
    result = verify_file(path)
    assert result.ok, result.summary()


def test_after_an_audit_restart_the_recreated_topic_is_recorded_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(0), command(1), command(2)])
        log.forget_source(("verbund.commands", 0))
        _append(log, [command(0, run=NEW)])
    with AuditLog(path) as log:
        assert log.recovery.verified.ok
        assert log.marks[("verbund.commands", 0)] == 0
        assert _append(log, [command(0, run=NEW)]) == 0  # re-delivery: skipped
        assert _append(log, [command(1, run=NEW), command(2, run=NEW)]) == 2  # not lost
    assert verify_file(path).ok


def test_a_replayed_record_without_a_restart_marker_is_still_caught(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        _append(log, [command(0), command(1)])
        log.forget_source(("verbund.commands", 0))
        _append(log, [command(0, run=NEW)])
    lines = path.read_bytes().splitlines(keepends=True)
    assert verify(lines).ok
    # a message that merely calls itself a restart marker does not reset the mark
    with AuditLog(path) as log:
        forged = SourceRecord(
            "verbund.commands", 0, 5, 1_790_000_000_000, None, b'{"type":"source_restarted"}'
        )
        _append(log, [forged])
        log.marks.pop(("verbund.commands", 0))  # a writer bug: no marker written
        _append(log, [command(3, run=NEW)])
    result = verify_file(path)
    assert (result.problem, result.seq) == (Problem.DUPLICATE_SOURCE, 6)
