"""Walk an audit log and name the first entry that was modified, removed, inserted,
reordered or cut (pure: feed it lines, read the result).

Positions are 1-based line numbers. The verifier streams: memory stays bounded except
for a window of recent hashes used to recognise inserted entries.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from services.audit.chain import (
    ENTRY_FIELDS,
    FIRST_SEQ,
    GENESIS_HASH,
    Entry,
    canonical,
    entry_hash,
    is_source_restart,
    sha256_hex,
)

HASH_WINDOW = 10_000


class Problem(StrEnum):
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    MODIFIED = "modified"
    REMOVED = "removed"
    INSERTED = "inserted"
    REORDERED = "reordered"
    BROKEN_LINK = "broken_link"
    DUPLICATE_SOURCE = "duplicate_source"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    last_seq: int | None = None
    last_hash: str = GENESIS_HASH
    line: int | None = None
    seq: int | None = None
    problem: Problem | None = None
    detail: str = ""

    def summary(self) -> str:
        if self.ok:
            return (
                f"intact: {self.entries} entries, last seq {self.last_seq}, "
                f"head {self.last_hash[:16]}"
            )
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"TAMPERED at {where}: {self.problem}: {self.detail}"


class _NotCanonical(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotCanonical(f"non-finite number {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):  # parsers disagree on which duplicate wins
        raise _NotCanonical("duplicate key")
    return value


def parse_entry(line: bytes | str) -> Entry | None:
    """The entry on one line, or None when the line is not a well-formed entry (including
    duplicate keys, which JSON readers resolve differently, and NaN/Infinity: no writer
    produces those). Values canonical JSON cannot write (a lone surrogate, ``1e999``) are
    caught by :func:`hashable`."""
    try:
        value = json.loads(line, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeError, _NotCanonical
        return None
    if not isinstance(value, dict) or set(value) != ENTRY_FIELDS:
        return None
    if not all(isinstance(value[k], int) for k in ("seq", "source_partition", "source_offset")):
        return None
    if not all(isinstance(value[k], str) for k in ("prev_hash", "hash", "kind", "at")):
        return None
    return value


def hashable(entry: Entry) -> bool:
    """Whether canonical JSON can write the entry (so it can be hashed and shown)."""
    try:
        canonical(entry)
    except (ValueError, RecursionError):
        return False
    return True


def _ends_with_newline(line: bytes | str) -> bool:
    return line.endswith(b"\n") if isinstance(line, bytes) else line.endswith("\n")


def _blank(line: bytes | str) -> bool:
    return not line.strip()


def _payload_matches(entry: Entry) -> bool:
    """For unparseable entries the original bytes are kept: they must match their sha256."""
    if entry["kind"] != "unparseable":
        return True
    payload: Any = entry["payload"]
    try:
        raw = base64.b64decode(payload["base64"], validate=True)
    except (TypeError, KeyError, ValueError):
        return False
    return bool(sha256_hex(raw) == entry["payload_sha256"])


class Verifier:
    """Feed lines in order (``feed``), then ``result()``. Stops judging at the first problem
    but keeps reading when it needs to look ahead (removed vs. reordered)."""

    def __init__(self) -> None:
        self.lines = 0
        self.entries = 0
        self._expected_seq = FIRST_SEQ
        self._prev_hash = GENESIS_HASH
        self._last_seq: int | None = None
        self._recent: OrderedDict[str, tuple[int, int]] = OrderedDict()  # hash -> (line, seq)
        self._sources: dict[tuple[str, int], int] = {}
        self._failure: VerifyResult | None = None
        self._missing: tuple[int, int, int, int] | None = (
            None  # line, found seq, missing, range end
        )
        self._missing_found: tuple[int, int] | None = None  # line, seq
        self._last_line_unterminated = False

    @property
    def failed(self) -> bool:
        return self._failure is not None or self._missing is not None

    def feed(self, line: bytes | str) -> None:
        self.lines += 1
        self._last_line_unterminated = not _ends_with_newline(line)
        if self._missing is not None:
            self._look_for_missing(line)
            return
        if self._failure is not None:
            return
        if _blank(line):
            self._fail(Problem.MALFORMED, None, "empty line")
            return
        entry = parse_entry(line)
        if entry is None:
            self._fail(Problem.MALFORMED, None, "not a well-formed audit entry")
            return
        self._check(entry)

    def _fail(
        self, problem: Problem, seq: int | None, detail: str, line: int | None = None
    ) -> None:
        self._failure = VerifyResult(
            ok=False,
            entries=self.entries,
            last_seq=self._last_seq,
            last_hash=self._prev_hash,
            line=line if line is not None else self.lines,
            seq=seq,
            problem=problem,
            detail=detail,
        )

    def _check(self, entry: Entry) -> None:
        seq: int = entry["seq"]
        try:
            expected_hash = entry_hash(entry)
        except (ValueError, RecursionError):  # e.g. a lone surrogate, 1e999
            self._fail(Problem.MALFORMED, seq, "a value that canonical JSON cannot write")
            return
        if expected_hash != entry["hash"]:
            self._fail(Problem.MODIFIED, seq, "the entry's content does not match its hash")
            return
        if not _payload_matches(entry):
            self._fail(Problem.MODIFIED, seq, "the recorded bytes do not match payload_sha256")
            return
        if entry["prev_hash"] != self._prev_hash or seq != self._expected_seq:
            self._link_problem(entry)
            return
        source = (str(entry["source_topic"]), int(entry["source_partition"]))
        if is_source_restart(entry):  # the writer recorded that these offsets restart
            self._sources.pop(source, None)
            self._accept(entry)
            return
        last_offset = self._sources.get(source)
        if last_offset is not None and entry["source_offset"] <= last_offset:
            self._fail(
                Problem.DUPLICATE_SOURCE,
                seq,
                f"{source[0]}[{source[1]}] offset {entry['source_offset']} recorded again "
                f"(already at {last_offset})",
            )
            return
        self._sources[source] = int(entry["source_offset"])
        self._accept(entry)

    def _accept(self, entry: Entry) -> None:
        self.entries += 1
        self._last_seq = int(entry["seq"])
        self._expected_seq = self._last_seq + 1
        self._prev_hash = str(entry["hash"])
        self._recent[self._prev_hash] = (self.lines, self._last_seq)
        if len(self._recent) > HASH_WINDOW:
            self._recent.popitem(last=False)

    def _link_problem(self, entry: Entry) -> None:
        seq: int = entry["seq"]
        expected = self._expected_seq
        linked = self._recent.get(entry["prev_hash"])
        copy_of = self._recent.get(entry["hash"])
        if copy_of is not None:
            self._fail(Problem.INSERTED, seq, f"a copy of the entry at line {copy_of[0]}")
            return
        if (
            seq < expected
            and linked is not None
            and linked[1] == seq - 1
            and (linked[0] < self.lines - 1)
        ):
            # this entry links to an older one: everything accepted since then was inserted
            first = linked[0] + 1
            self._fail(
                Problem.INSERTED,
                None,
                f"entries at lines {first}-{self.lines - 1} are not part of the chain: "
                f"line {self.lines} (seq {seq}) links to line {linked[0]} (seq {linked[1]})",
                line=first,
            )
            return
        if seq > expected:
            # a gap: removed, unless the missing entries show up later (reordered)
            self._missing = (self.lines, seq, expected, seq - 1)
            return
        if seq < expected:
            self._fail(
                Problem.REORDERED,
                seq,
                f"seq {seq} comes after seq {expected - 1} (expected seq {expected})",
            )
            return
        where = f"line {linked[0]}" if linked is not None else "no entry before it"
        self._fail(
            Problem.BROKEN_LINK,
            seq,
            "prev_hash does not match the hash of the entry before it "
            f"(it matches {where}): this prev_hash or the entry before was rewritten",
        )

    def _look_for_missing(self, line: bytes | str) -> None:
        assert self._missing is not None
        if self._missing_found is not None:
            return
        entry = parse_entry(line)
        if entry is not None and self._missing[2] <= entry["seq"] <= self._missing[3]:
            self._missing_found = (self.lines, entry["seq"])

    def _resolve_missing(self) -> None:
        assert self._missing is not None
        line, found, low, high = self._missing
        self._missing = None
        missing = f"seq {low}" if low == high else f"seq {low}-{high}"
        if self._missing_found is not None:
            later_line, later_seq = self._missing_found
            self._fail(
                Problem.REORDERED,
                found,
                f"expected seq {low} here, found seq {found}; "
                f"seq {later_seq} comes later, at line {later_line}",
                line=line,
            )
        else:
            self._fail(
                Problem.REMOVED,
                found,
                f"{missing} missing before this entry (expected seq {low}, found seq {found})",
                line=line,
            )

    def result(self) -> VerifyResult:
        if self._missing is not None:
            self._resolve_missing()
        failure = self._failure
        if failure is not None:
            if (
                failure.problem is Problem.MALFORMED
                and failure.line == self.lines
                and self._last_line_unterminated
            ):
                return replace(
                    failure, problem=Problem.TRUNCATED, detail="the last line is cut off mid-entry"
                )
            return failure
        return VerifyResult(
            ok=True, entries=self.entries, last_seq=self._last_seq, last_hash=self._prev_hash
        )


def verify(lines: Iterable[bytes | str]) -> VerifyResult:
    """Check a whole log, given as its lines (with their newlines, as files yield them)."""
    verifier = Verifier()
    for line in lines:
        verifier.feed(line)
    return verifier.result()
