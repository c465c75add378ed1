"""The audit service as a real process on the embedded broker: records what it is sent,
survives restarts without gaps or duplicates, and `verbund audit verify` catches tampering."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common.topics import (
    AUDIT,
    COMMANDS,
    DECISIONS,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    PROTOCOLS,
    RUNS,
)
from tests.integration.kafka_helpers import ServiceProcess, TopicCollector, dumps, metric_value

pytestmark = pytest.mark.integration

AT = "2026-11-20T08:00:00+00:00"


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def _wait_for_entries(
    path: Path, predicate: Any, count: int, service: ServiceProcess, timeout: float = 120.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in _entries(path) if predicate(e)]
        if len(found) >= count:
            return found
        if not service.alive:
            raise AssertionError(f"audit service exited:\n{service.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"expected {count} audit entries, found {len(found)}:\n{service.log_text()[-3000:]}"
            )
        await asyncio.sleep(0.2)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _mine(run: str, partner: str) -> Any:
    def predicate(entry: dict[str, Any]) -> bool:
        text = json.dumps(entry["payload"])
        return run in text or partner in text or entry["key"] in (run, partner)

    return predicate


async def _publish_first_batch(producer: AIOKafkaProducer, run: str, partner: str) -> None:
    sends = [
        (
            COMMANDS.name,
            run,
            {
                "type": "TriggerProtocol",
                "command_id": "cmd-" + run[4:],
                "protocol_id": "reallocation-basic",
                "requested_by": "anna",
                "reason": "drill " + run,
                "at": AT,
            },
        ),
        (
            COMMANDS.name,
            run,
            {
                "type": "ApproveRun",
                "command_id": "cmd-a" + run[5:],
                "run_id": run,
                "principal": "anna",
                "token_id": "t1",
                "at": AT,
            },
        ),
        (RUNS.name, run, {"type": "RunUpdated", "run_id": run, "state": "solving", "at": AT}),
        (
            DECISIONS.name,
            run,
            {
                "type": "DecisionPublished",
                "run_id": run,
                "partners": [partner, "werk-donor"],
                "at": AT,
            },
        ),
        (
            PARTNER_ORDERS.name,
            partner,
            {
                "type": "OrderIssued",
                "order_id": f"tr-{run}",
                "run_id": run,
                "recipient": partner,
                "at": AT,
            },
        ),
        (
            PARTNER_EVENTS.name,
            partner,
            {
                "type": "OrderAcknowledged",
                "schema_version": 1,
                "event_id": f"evt-{run}",
                "partner_id": partner,
                "occurred_at": AT,
                "order_id": f"tr-{run}",
                "accepted": True,
            },
        ),
        (
            PARTNER_EVENTS.name,
            partner,
            {"type": "StockReported", "partner_id": partner, "event_id": f"evt-stock-{run}"},
        ),
        (
            PROTOCOLS.name,
            "reallocation-basic",
            {
                "type": "ProtocolVersionLoaded",
                "protocol_id": "reallocation-basic",
                "version": 3,
                "loaded_for": run,
            },
        ),
        (
            COMMANDS.name,
            "mallory",
            {
                "type": "AccessRefused",
                "schema_version": 1,
                "principal": "mallory",
                "role": "observer",
                "action": "approve_run",
                "resource": run,
                "reason": "role coordinator required",
                "service": "coordinator",
                "at": AT,
            },
        ),
    ]
    for topic, key, value in sends:
        await producer.send_and_wait(topic, dumps(value), key=key.encode())
    await producer.send_and_wait(COMMANDS.name, b"\x00not json " + run.encode(), key=run.encode())


async def test_audit_service_records_restarts_and_detects_tampering(
    bootstrap: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "audit" / "audit.log"
    run = f"run-{uuid.uuid4().hex[:12]}"
    partner = f"klinik-{uuid.uuid4().hex[:6]}"
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_AUDIT_LOG": str(log_file),
        "VERBUND_AUDIT_GROUP_ID": f"audit-test-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
        "VERBUND_AUDIT_LAG_INTERVAL": "0.5",
        "VERBUND_LOG_LEVEL": "INFO",
    }
    mine = _mine(run, partner)
    audit_topic = await TopicCollector(bootstrap, AUDIT.name).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    service = ServiceProcess(["audit"], env, tmp_path / "audit-1.log").start()
    try:
        await _publish_first_batch(producer, run, partner)
        first = await _wait_for_entries(log_file, mine, 9, service)
        kinds = [e["kind"] for e in first]
        assert sorted(kinds) == sorted(
            [
                "TriggerProtocol",
                "ApproveRun",
                "RunUpdated",
                "DecisionPublished",
                "OrderIssued",
                "OrderAcknowledged",
                "ProtocolVersionLoaded",
                "AccessRefused",
                "unparseable",
            ]
        )
        assert "StockReported" not in {e["kind"] for e in _entries(log_file)}
        unparseable = next(e for e in first if e["kind"] == "unparseable")
        assert unparseable["key"] == run and unparseable["source_topic"] == COMMANDS.name

        # every entry of the file is also on the audit topic, identical
        seqs = {e["seq"] for e in first}
        on_topic = await audit_topic.wait_for(lambda v: v.get("seq") in seqs, count=len(seqs))
        assert {v["hash"] for v in on_topic} == {e["hash"] for e in first}

        deadline = time.monotonic() + 20
        while True:
            text = service.metrics()
            last_seq = _entries(log_file)[-1]["seq"]
            lag = metric_value(text, "verbund_audit_consumer_lag", topic=COMMANDS.name)
            if metric_value(text, "verbund_audit_last_seq") == last_seq and lag == 0:
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.3)
        assert (
            metric_value(text, "verbund_audit_entries_appended_total", kind="ApproveRun") or 0
        ) >= 1
        assert (
            metric_value(text, "verbund_audit_entries_appended_total", kind="unparseable") or 0
        ) >= 1
        assert metric_value(text, "verbund_audit_log_intact") == 1
        assert service.stop() == 0

        # while it is down: more commands and acknowledgements
        await producer.send_and_wait(
            COMMANDS.name,
            dumps({"type": "RejectRun", "run_id": run, "principal": "bernd", "at": AT}),
            key=run.encode(),
        )
        await producer.send_and_wait(
            PARTNER_EVENTS.name,
            dumps(
                {
                    "type": "OrderAcknowledged",
                    "partner_id": partner,
                    "order_id": "tr-2-" + run,
                    "accepted": False,
                    "event_id": f"evt-2-{run}",
                    "occurred_at": AT,
                }
            ),
            key=partner.encode(),
        )

        # restart under a fresh consumer group: everything is re-delivered from the
        # beginning, and the log's own source offsets keep it from being recorded twice
        env["VERBUND_AUDIT_GROUP_ID"] = f"audit-test-{uuid.uuid4().hex[:8]}"
        service = ServiceProcess(["audit"], env, tmp_path / "audit-2.log").start()
        after = await _wait_for_entries(log_file, mine, 11, service)
        await asyncio.sleep(2.0)  # let the re-delivered backlog pass
        entries = _entries(log_file)
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        sources = [(e["source_topic"], e["source_partition"], e["source_offset"]) for e in entries]
        assert len(sources) == len(set(sources)), "a re-delivered record was recorded twice"
        assert len([e for e in entries if mine(e)]) == 11
        assert {e["kind"] for e in after[9:]} == {"RejectRun", "OrderAcknowledged"}
        assert service.stop() == 0
    finally:
        service.stop()
        await producer.stop()
        await audit_topic.stop()

    verified = _cli("verify", "--log", str(log_file))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout

    shown = _cli("show", "--log", str(log_file), "--run", run, "--json")
    assert shown.returncode == 0, shown.stderr
    assert {json.loads(line)["kind"] for line in shown.stdout.splitlines()} >= {
        "TriggerProtocol",
        "ApproveRun",
        "RejectRun",
        "DecisionPublished",
        "OrderIssued",
    }
    table = _cli("show", "--log", str(log_file), "--partner", partner)
    assert table.returncode == 0 and "OrderAcknowledged" in table.stdout
    assert "seq" in table.stdout.splitlines()[0]

    # tamper: an auditor-visible field of one entry is changed in place
    lines = log_file.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if b'"ApproveRun"' in line)
    lines[index] = lines[index].replace(b'"principal":"anna"', b'"principal":"eve"')
    log_file.write_bytes(b"".join(lines))
    tampered = _cli("verify", "--log", str(log_file))
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"line {index + 1} (seq {index + 1})" in tampered.stdout
    assert "modified" in tampered.stdout
