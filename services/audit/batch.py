"""Turn a batch of consumed records into chained entries, skipping re-deliveries (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.audit.chain import ChainHead, Entry, chain
from services.audit.records import SourceRecord, to_recorded, unrecordable

Source = tuple[str, int]


@dataclass(frozen=True)
class RecordFailure:
    """A record the audit failed to record as it is (a bug, not bad input: bad input is
    recorded as ``unparseable`` by :func:`to_recorded`); it was recorded as
    ``unparseable`` with ``error`` instead."""

    topic: str
    partition: int
    offset: int
    error: str


@dataclass
class BatchResult:
    entries: list[Entry]
    head: ChainHead
    marks: dict[Source, int]
    skipped: Counter[str] = field(default_factory=Counter)
    commit: dict[Source, int] = field(default_factory=dict)  # next offset to consume
    failures: list[RecordFailure] = field(default_factory=list)


def record_batch(
    head: ChainHead, marks: Mapping[Source, int], records: Iterable[SourceRecord]
) -> BatchResult:
    """Entries for the records not recorded yet, in order.

    ``marks`` holds the highest source offset already in the log per topic partition
    (read from the log itself), so a record re-delivered after a crash is skipped.
    ``commit`` says which offsets may be committed once the entries are durable.

    One record never stops the batch: should recording it fail all the same, it is
    recorded as ``unparseable`` with the error (and listed in ``failures``) and the
    records after it go on.
    """
    new_marks = dict(marks)
    skipped: Counter[str] = Counter()
    commit: dict[Source, int] = {}
    entries: list[Entry] = []
    failures: list[RecordFailure] = []
    for record in records:
        source = (record.topic, record.partition)
        commit[source] = max(commit.get(source, 0), record.offset + 1)
        last = new_marks.get(source)
        if last is not None and record.offset <= last:
            skipped["duplicate"] += 1
            continue
        try:
            recorded = to_recorded(record)
            if recorded is None:
                skipped["not_audited"] += 1
                continue
            linked, next_head = chain(head, [recorded])
        except Exception as exc:  # a bug must not let one record stop the audit
            error = f"the audit could not record it: {exc!r}"
            failures.append(RecordFailure(record.topic, record.partition, record.offset, error))
            linked, next_head = chain(head, [unrecordable(record, error)])
        new_marks[source] = record.offset
        entries.extend(linked)
        head = next_head
    return BatchResult(entries, head, new_marks, skipped, commit, failures)
