"""Turn a batch of consumed records into chained entries, skipping re-deliveries (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.audit.chain import ChainHead, Entry, Recorded, chain
from services.audit.records import SourceRecord, to_recorded

Source = tuple[str, int]


@dataclass
class BatchResult:
    entries: list[Entry]
    head: ChainHead
    marks: dict[Source, int]
    skipped: Counter[str] = field(default_factory=Counter)
    commit: dict[Source, int] = field(default_factory=dict)  # next offset to consume


def record_batch(
    head: ChainHead, marks: Mapping[Source, int], records: Iterable[SourceRecord]
) -> BatchResult:
    """Entries for the records not recorded yet, in order.

    ``marks`` holds the highest source offset already in the log per topic partition
    (read from the log itself), so a record re-delivered after a crash is skipped.
    ``commit`` says which offsets may be committed once the entries are durable.
    """
    new_marks = dict(marks)
    skipped: Counter[str] = Counter()
    commit: dict[Source, int] = {}
    items: list[Recorded] = []
    for record in records:
        source = (record.topic, record.partition)
        commit[source] = max(commit.get(source, 0), record.offset + 1)
        last = new_marks.get(source)
        if last is not None and record.offset <= last:
            skipped["duplicate"] += 1
            continue
        recorded = to_recorded(record)
        if recorded is None:
            skipped["not_audited"] += 1
            continue
        new_marks[source] = record.offset
        items.append(recorded)
    entries, new_head = chain(head, items)
    return BatchResult(entries, new_head, new_marks, skipped, commit)
