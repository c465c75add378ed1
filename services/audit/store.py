"""The audit log file: append-only, one canonical JSON entry per line, fsync'd per batch.

On open the file is read once: the last entry gives the chain head, the highest source
offset per topic partition gives the de-duplication marks, and the whole chain is
verified on the way. A last line cut off by a crash mid-write (never fsync'd, so its
offsets were never committed and will be re-delivered) is moved to ``<log>.torn``
before appending continues; nothing is silently discarded.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.audit.chain import (
    ChainHead,
    Entry,
    chain,
    encode_line,
    is_source_restart,
    source_restart,
)
from services.audit.verify import Verifier, VerifyResult, parse_entry, verify

Source = tuple[str, int]


class AuditLogError(RuntimeError):
    """The audit log cannot be opened for appending (busy, unreadable)."""


@dataclass(frozen=True)
class Recovery:
    verified: VerifyResult
    entries: int
    torn_bytes: int


class AuditLog:
    """The single writer of one audit log file (an exclusive lock guards it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            raise AuditLogError(f"{path} is in use by another audit writer") from exc
        self.head = ChainHead()
        self.marks: dict[Source, int] = {}
        self.recovery = self._recover()

    def _recover(self) -> Recovery:
        verifier = Verifier()
        last: Entry | None = None
        good_end = 0  # byte offset after the last complete line
        position = 0
        torn = b""
        with open(self.path, "rb") as handle:
            for line in handle:
                position += len(line)
                if not line.endswith(b"\n"):
                    torn = line
                    break
                good_end = position
                verifier.feed(line)
                entry = parse_entry(line)
                if entry is None:
                    continue
                last = entry
                self._mark(entry)
        if torn:
            entry = parse_entry(torn)
            if entry is not None:  # complete entry, only the newline is missing
                self._write(b"\n")
                verifier.feed(torn + b"\n")
                last = entry
                self._mark(entry)
                torn = b""
            else:
                self._set_aside(torn, good_end)
        self.head = ChainHead.after(last)
        return Recovery(verifier.result(), verifier.entries, len(torn))

    def _mark(self, entry: Entry) -> None:
        source = (str(entry["source_topic"]), int(entry["source_partition"]))
        if is_source_restart(entry):  # offsets count again from the start
            self.marks.pop(source, None)
            return
        offset = int(entry["source_offset"])
        if offset > self.marks.get(source, -1):
            self.marks[source] = offset

    def _set_aside(self, torn: bytes, good_end: int) -> None:
        aside = self.path.with_name(self.path.name + ".torn")
        with open(aside, "ab") as handle:
            handle.write(torn + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.ftruncate(self._fd, good_end)
        os.fsync(self._fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, entries: list[Entry], head: ChainHead, marks: dict[Source, int]) -> None:
        """Write entries, flush and fsync; only then adopt the new head and marks."""
        if entries:
            size = os.fstat(self._fd).st_size
            try:
                self._write(b"".join(encode_line(entry) for entry in entries))
                os.fsync(self._fd)
            except OSError:
                # leave no half-written batch behind: the records will be re-delivered
                os.ftruncate(self._fd, size)
                raise
        self.head = head
        self.marks = marks

    def forget_source(self, source: Source, at: str | None = None) -> list[Entry]:
        """Drop a partition's de-duplication mark (its topic was recreated, offsets restart).

        A ``source_restarted`` entry records it in the chain (durably, before the mark goes),
        so that verify accepts the partition's offsets starting over and a restarted writer
        does not take the new topic's records for re-deliveries of the old one's."""
        if at is None:
            at = datetime.now(UTC).isoformat(timespec="milliseconds")
        marker = source_restart(at, source[0], source[1], self.marks.get(source))
        entries, head = chain(self.head, [marker])
        marks = dict(self.marks)
        marks.pop(source, None)
        self.append(entries, head, marks)
        return entries

    def close(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_lines(
    path: Path,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    every: int = 50_000,
) -> Iterator[bytes]:
    """The lines of a log file (up to ``limit`` bytes), reporting (bytes read, total)."""
    total = path.stat().st_size if limit is None else limit
    done = 0
    with open(path, "rb") as handle:
        for count, line in enumerate(handle, 1):
            if limit is not None and done + len(line) > limit:
                break
            done += len(line)
            if on_progress is not None and count % every == 0:
                on_progress(done, total)
            yield line
    if on_progress is not None:
        on_progress(done, total)


def verify_file(
    path: Path,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    return verify(log_lines(path, limit, on_progress))
