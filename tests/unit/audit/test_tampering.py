"""Every kind of tampering is detected at the right line, with the right diagnosis."""

from __future__ import annotations

import json

import pytest

from services.audit.chain import canonical, encode_line
from services.audit.verify import Problem, verify
from tests.unit.audit.helpers import entries, lines, rehashed

N = 10


@pytest.fixture
def log() -> list[bytes]:
    return lines(entries(N))


def _edit(line: bytes, **changes: object) -> bytes:
    entry = json.loads(line)
    entry.update(changes)
    return canonical(entry) + b"\n"


@pytest.mark.parametrize("index", [0, 4, N - 1])
def test_modified_field_is_named(log: list[bytes], index: int) -> None:
    entry = json.loads(log[index])
    entry["payload"]["principal"] = "mallory"
    log[index] = canonical(entry) + b"\n"
    result = verify(log)
    assert not result.ok
    assert (result.line, result.seq, result.problem) == (index + 1, index + 1, Problem.MODIFIED)
    assert f"line {index + 1} (seq {index + 1})" in result.summary()


def test_modified_top_level_field(log: list[bytes]) -> None:
    log[6] = _edit(log[6], kind="RejectRun")
    result = verify(log)
    assert (result.line, result.problem) == (7, Problem.MODIFIED)


def test_whitespace_only_change_to_a_line_is_not_tampering_but_a_byte_edit_is(
    log: list[bytes],
) -> None:
    log[2] = log[2].replace(b'"principal":"anna"', b'"principal":"anne"')
    result = verify(log)
    assert (result.line, result.problem) == (3, Problem.MODIFIED)


@pytest.mark.parametrize("index", [0, 3, N - 2])
def test_deleted_entry_is_named(log: list[bytes], index: int) -> None:
    del log[index]
    result = verify(log)
    assert not result.ok
    assert (result.line, result.problem) == (index + 1, Problem.REMOVED)
    assert f"seq {index + 1} missing" in result.detail


def test_deleted_run_of_entries(log: list[bytes]) -> None:
    del log[2:5]
    result = verify(log)
    assert (result.line, result.seq, result.problem) == (3, 6, Problem.REMOVED)
    assert "seq 3-5 missing" in result.detail


def test_inserted_forged_entry_without_valid_hash(log: list[bytes]) -> None:
    forged = _edit(log[3], seq=5)
    log.insert(4, forged)
    result = verify(log)
    assert (result.line, result.problem) == (5, Problem.MODIFIED)


def test_inserted_entry_with_recomputed_hash_is_named(log: list[bytes]) -> None:
    """A forger links a new entry to entry 4 and takes seq 5: named at its own line."""
    before = json.loads(log[3])
    victim = json.loads(log[4])
    forged = dict(victim, payload={"type": "ApproveRun", "run_id": "run-forged00001"})
    forged = rehashed(dict(forged, prev_hash=before["hash"]))
    log.insert(4, encode_line(forged))
    result = verify(log)
    assert not result.ok
    assert (result.line, result.problem) == (5, Problem.INSERTED)
    assert "line 6 (seq 5) links to line 4" in result.detail


def test_duplicated_entry_is_named(log: list[bytes]) -> None:
    log.insert(3, log[2])
    result = verify(log)
    assert (result.line, result.seq, result.problem) == (4, 3, Problem.INSERTED)
    assert "copy of the entry at line 3" in result.detail


def test_swapped_entries_are_named(log: list[bytes]) -> None:
    log[3], log[4] = log[4], log[3]
    result = verify(log)
    assert not result.ok
    assert (result.line, result.seq, result.problem) == (4, 5, Problem.REORDERED)
    assert "seq 4 comes later, at line 5" in result.detail


def test_swapped_distant_entries(log: list[bytes]) -> None:
    log[1], log[7] = log[7], log[1]
    result = verify(log)
    assert (result.line, result.problem) == (2, Problem.REORDERED)


def test_last_line_truncated_mid_entry(log: list[bytes]) -> None:
    log[-1] = log[-1][: len(log[-1]) // 2]
    result = verify(log)
    assert (result.line, result.problem) == (N, Problem.TRUNCATED)
    assert result.entries == N - 1 and result.last_seq == N - 1


def test_a_line_cut_in_the_middle_of_the_log(log: list[bytes]) -> None:
    log[4] = log[4][:40] + b"\n"
    result = verify(log)
    assert (result.line, result.problem) == (5, Problem.MALFORMED)


def test_changed_prev_hash_without_rehash(log: list[bytes]) -> None:
    log[5] = _edit(log[5], prev_hash="f" * 64)
    result = verify(log)
    assert (result.line, result.seq, result.problem) == (6, 6, Problem.MODIFIED)


def test_changed_prev_hash_with_recomputed_hash(log: list[bytes]) -> None:
    entry = json.loads(log[5])
    log[5] = encode_line(rehashed(dict(entry, prev_hash="f" * 64)))
    result = verify(log)
    assert (result.line, result.seq, result.problem) == (6, 6, Problem.BROKEN_LINK)


def test_rewritten_entry_with_recomputed_hash_breaks_the_next_link(log: list[bytes]) -> None:
    entry = json.loads(log[2])
    entry["payload"]["principal"] = "mallory"
    log[2] = encode_line(rehashed(entry))
    result = verify(log)
    assert (result.line, result.problem) == (4, Problem.BROKEN_LINK)
    assert "entry before was rewritten" in result.detail


def test_first_problem_wins(log: list[bytes]) -> None:
    log[7] = _edit(log[7], kind="x")
    del log[2]
    result = verify(log)
    assert (result.line, result.problem) == (3, Problem.REMOVED)


def test_garbage_and_empty_lines(log: list[bytes]) -> None:
    assert verify([*log[:3], b"\n", *log[3:]]).line == 4
    assert verify([*log[:3], b"[1,2]\n", *log[3:]]).problem is Problem.MALFORMED


def test_unparseable_entry_bytes_are_checked() -> None:
    from services.audit.batch import record_batch
    from services.audit.chain import ChainHead
    from services.audit.records import SourceRecord

    bad = SourceRecord("verbund.commands", 0, 0, 0, None, b"\xff not json")
    (entry,) = record_batch(ChainHead(), {}, [bad]).entries
    assert entry["kind"] == "unparseable"
    forged = rehashed(dict(entry, payload=dict(entry["payload"], base64="AAAA")))
    result = verify([encode_line(forged)])
    assert result.problem is Problem.MODIFIED and "payload_sha256" in result.detail
