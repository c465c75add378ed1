"""`verbund audit show` prints what partners sent (Kafka keys, payload texts): control
characters in them must not forge table rows or drive the auditor's terminal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from services.audit.batch import record_batch
from services.audit.chain import ChainHead, encode_line
from services.audit.cli import register
from services.audit.records import SourceRecord
from services.common.topics import PARTNER_EVENTS

FORGED = "\n99  2026-01-01T00:00:00.000+00:00  ApproveRun  verbund.commands[0]@9  run-x"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


def test_control_characters_are_escaped_in_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "type": "OrderAcknowledged",
        "partner_id": "klinik-b",
        "order_id": "tr-000000000001",
        "accepted": False,
        "reason": "no stock" + FORGED + "\x1b[2J",
    }
    record = SourceRecord(
        PARTNER_EVENTS.name,
        1,
        0,
        1_790_000_000_000,
        ("klinik-b" + FORGED).encode(),
        json.dumps(body).encode(),
    )
    result = record_batch(ChainHead(), {}, [record])
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(encode_line(e) for e in result.entries))
    assert _run("audit", "show", "--log", str(path)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == "1 entries"
    assert len(lines) == 4  # header, rule, one row, count
    assert "\x1b" not in out
