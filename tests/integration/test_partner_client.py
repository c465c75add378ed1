"""The confluent-kafka example partner client writes contract-valid, partner-keyed events to
the partner's own events topic."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.events import StockReported, parse_partner_event
from services.common.kafka import ensure_topics
from services.common.topics import partner_topics

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "partner_client.py"
CSV = """\
# export of 2026-11-22, WMS Lager Nord
site_id,material_id,unit,on_hand,safety_stock,daily_consumption
lager-1,NACL-500ML,pcs,120,40,12.5
lager-1,HANDSCHUH-M,pcs,5000,1000,300
lager-2,O2-FLASCHE-10L,pcs,14,20,2
"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("partner_client", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = _load()


async def _read(
    bootstrap: str, partner: str, partition: int, offset: int
) -> tuple[bytes | None, bytes]:
    """The record the client wrote to the partner's own events topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(client.topic_for(partner), partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        record = await asyncio.wait_for(consumer.getone(), 15)
        assert record.offset == offset
        assert record.value is not None
        return record.key, record.value
    finally:
        await consumer.stop()


def test_csv_export_becomes_positions() -> None:
    positions = client.read_positions(CSV.splitlines())
    assert [p["material_id"] for p in positions] == ["NACL-500ML", "HANDSCHUH-M", "O2-FLASCHE-10L"]
    assert positions[2] == {
        "site_id": "lager-2",
        "material_id": "O2-FLASCHE-10L",
        "unit": "pcs",
        "on_hand": 14.0,
        "safety_stock": 20.0,
        "daily_consumption": 2.0,
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("site_id,material_id,unit,on_hand\nlager-1,X,pcs,1\n", "header lacks"),
        (CSV.replace("5000", "viele"), "line 3: on_hand"),
        ("site_id,material_id,unit,on_hand,safety_stock,daily_consumption\n", "no positions"),
    ],
)
def test_bad_exports_are_refused_before_sending(text: str, problem: str) -> None:
    with pytest.raises(client.ExportError, match=problem):
        client.read_positions(text.splitlines())


def test_report_validates_against_the_contract() -> None:
    report = client.build_stock_report(
        "klinikum-nord",
        client.read_positions(CSV.splitlines()),
        occurred_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        event_id="wms-export-0001",
    )
    event = parse_partner_event(json.dumps(report))
    assert isinstance(event, StockReported)
    assert len(event.positions) == 3
    with pytest.raises(client.ExportError):
        client.build_stock_report("klinikum-nord", [], occurred_at=datetime(2026, 1, 1))


@pytest.mark.integration
async def test_produced_with_confluent_kafka_read_with_aiokafka(bootstrap: str) -> None:
    await ensure_topics(bootstrap, partner_topics("klinikum-nord"))
    report = client.build_stock_report("klinikum-nord", client.read_positions(CSV.splitlines()))
    partition, offset = await asyncio.to_thread(client.produce, bootstrap, report)
    key, value = await _read(bootstrap, "klinikum-nord", partition, offset)
    assert key == b"klinikum-nord"
    event = parse_partner_event(value)
    assert isinstance(event, StockReported)
    assert event.event_id == report["event_id"]
    assert event.partner_id == "klinikum-nord"
    assert [(p.site_id, p.material_id, p.on_hand) for p in event.positions] == [
        ("lager-1", "NACL-500ML", 120.0),
        ("lager-1", "HANDSCHUH-M", 5000.0),
        ("lager-2", "O2-FLASCHE-10L", 14.0),
    ]


@pytest.mark.integration
async def test_runs_as_a_script(bootstrap: str, tmp_path: Path) -> None:
    await ensure_topics(bootstrap, partner_topics("stadtwerke-sued"))
    export = tmp_path / "stock.csv"
    export.write_text(CSV, encoding="utf-8")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(SCRIPT),
            "--bootstrap",
            bootstrap,
            "--partner",
            "stadtwerke-sued",
            "--csv",
            str(export),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sent 3 positions as event ")
    words = result.stdout.split()
    partition, offset = int(words[words.index("partition") + 1]), int(words[-1])
    assert " to verbund.partner.stadtwerke-sued.events partition " in result.stdout
    key, value = await _read(bootstrap, "stadtwerke-sued", partition, offset)
    assert key == b"stadtwerke-sued"
    assert parse_partner_event(value).partner_id == "stadtwerke-sued"


async def test_unreachable_broker_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from services.common.broker import free_port

    report = client.build_stock_report("klinikum-nord", client.read_positions(CSV.splitlines()))
    with pytest.raises(RuntimeError, match=r"no acknowledgement|refused"):
        await asyncio.to_thread(
            client.produce, f"127.0.0.1:{free_port()}", report, None, 3.0
        )
