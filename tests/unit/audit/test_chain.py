"""Canonical JSON entries and the hash chain."""

from __future__ import annotations

import hashlib
import json

from services.audit.chain import GENESIS_HASH, ChainHead, canonical, chain, encode_line
from services.audit.verify import verify
from tests.unit.audit.helpers import entries, lines


def test_canonical_json_sorted_compact_utf8() -> None:
    assert (
        canonical({"b": 1, "a": "ä", "c": [1.5, None]}) == '{"a":"ä","b":1,"c":[1.5,null]}'.encode()
    )


def test_entry_fields_and_hash_definition() -> None:
    first, second = entries(2)
    assert set(first) == {
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
    assert first["seq"] == 1 and first["prev_hash"] == GENESIS_HASH
    body = {k: v for k, v in first.items() if k != "hash"}
    expected = hashlib.sha256(
        GENESIS_HASH.encode() + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert first["hash"] == expected
    assert second["seq"] == 2 and second["prev_hash"] == first["hash"]
    assert first["payload"]["type"] == "ApproveRun" and first["kind"] == "ApproveRun"
    assert first["at"] == "2026-09-21T14:13:20.000+00:00"


def test_a_line_is_the_canonical_entry() -> None:
    (entry,) = entries(1)
    line = encode_line(entry)
    assert line.endswith(b"\n") and b" " not in line.replace(b"ApproveRun", b"")
    assert json.loads(line) == entry


def test_chain_continues_from_head() -> None:
    first = entries(3)
    head = ChainHead.after(first[-1])
    more, _ = chain(head, [])
    assert more == [] and head.next_seq == 4 and head.last_hash == first[-1]["hash"]


def test_intact_log_verifies() -> None:
    result = verify(lines(entries(20)))
    assert result.ok and result.entries == 20 and result.last_seq == 20
    assert "intact" in result.summary()


def test_empty_log_is_intact() -> None:
    result = verify([])
    assert result.ok and result.entries == 0 and result.last_seq is None
