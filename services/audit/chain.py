"""The hash chain: canonical JSON entries, each carrying the hash of the one before.

An entry is ``{seq, at, kind, source_topic, source_partition, source_offset, key,
payload_sha256, payload, prev_hash, hash}`` where ``hash = sha256(prev_hash +
canonical(entry without hash))`` and the first entry's ``prev_hash`` is 64 zeros.
Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity.

Everything here is pure: no files, no Kafka, no clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
FIRST_SEQ = 1
# The entry the writer chains when a source partition's offsets restart (its topic was
# recreated): ``source_offset`` is -1 (no Kafka record has that offset), and from there on
# that partition's offsets count again from the start, for de-duplication and for verify.
SOURCE_RESTARTED = "source_restarted"
RESTART_OFFSET = -1

ENTRY_FIELDS = frozenset(
    {
        "seq",
        "at",
        "kind",
        "source_topic",
        "source_partition",
        "source_offset",
        "key",
        "payload_sha256",
        "payload",
        "prev_hash",
        "hash",
    }
)

Entry = dict[str, Any]


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, finite numbers only."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_hash(entry: Entry) -> str:
    """The hash an entry must carry: sha256(prev_hash + canonical(entry without hash))."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return sha256_hex(str(entry.get("prev_hash", "")).encode("utf-8") + canonical(body))


@dataclass(frozen=True)
class ChainHead:
    """Where the chain continues: the next sequence number and the last entry's hash."""

    next_seq: int = FIRST_SEQ
    last_hash: str = GENESIS_HASH

    @classmethod
    def after(cls, entry: Entry | None) -> ChainHead:
        if entry is None:
            return cls()
        return cls(int(entry["seq"]) + 1, str(entry["hash"]))


@dataclass(frozen=True)
class Recorded:
    """One thing to record, before it gets its place in the chain."""

    at: str
    kind: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None
    payload_sha256: str
    payload: Any


def is_source_restart(entry: Entry) -> bool:
    return entry.get("kind") == SOURCE_RESTARTED and entry.get("source_offset") == RESTART_OFFSET


def source_restart(at: str, topic: str, partition: int, previous_offset: int | None) -> Recorded:
    """The marker entry for a source partition whose offsets restart."""
    payload = {
        "previous_offset": previous_offset,
        "reason": "the source topic was recreated; its offsets restart",
    }
    return Recorded(
        at=at,
        kind=SOURCE_RESTARTED,
        source_topic=topic,
        source_partition=partition,
        source_offset=RESTART_OFFSET,
        key=None,
        payload_sha256=sha256_hex(canonical(payload)),
        payload=payload,
    )


def chain(head: ChainHead, items: list[Recorded]) -> tuple[list[Entry], ChainHead]:
    """Give each item the next sequence number and link it; returns entries and new head."""
    entries: list[Entry] = []
    seq, prev = head.next_seq, head.last_hash
    for item in items:
        entry: Entry = {
            "seq": seq,
            "at": item.at,
            "kind": item.kind,
            "source_topic": item.source_topic,
            "source_partition": item.source_partition,
            "source_offset": item.source_offset,
            "key": item.key,
            "payload_sha256": item.payload_sha256,
            "payload": item.payload,
            "prev_hash": prev,
        }
        entry["hash"] = entry_hash(entry)
        entries.append(entry)
        seq, prev = seq + 1, entry["hash"]
    return entries, ChainHead(seq, prev)


def encode_line(entry: Entry) -> bytes:
    """One log line: the canonical entry (with its hash) and a newline."""
    return canonical(entry) + b"\n"
