"""Example partner integration: send a stock export to the alliance over Kafka.

Written with ``confluent-kafka`` (librdkafka), as an ERP/WMS team would, and without
Verbund's Python code: the message format is the JSON Schema in
``schemas/json/StockReported.schema.json`` (topic and key: ``schemas/asyncapi.yaml``).

Each partner writes to its own topic, ``verbund.partner.<partner id>.events``: its Kafka user
may write there and nowhere else (docs/partner-onboarding.md, section 4).

Input is a CSV export, one position per line::

    site_id,material_id,unit,on_hand,safety_stock,daily_consumption
    lager-1,NACL-500ML,pcs,120,40,12.5

Run it::

    python examples/partner_client.py --bootstrap 127.0.0.1:9092 --partner klinikum-nord \\
        --csv stock.csv          # or pipe the CSV into stdin

The record is keyed by the partner id and produced with ``acks=all``: the script exits 0
only once the alliance's brokers have stored it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

TOPIC_TEMPLATE = "verbund.partner.{partner_id}.events"


def topic_for(partner_id: str) -> str:
    """The partner's own events topic."""
    return TOPIC_TEMPLATE.format(partner_id=partner_id)



COLUMNS = ("site_id", "material_id", "unit", "on_hand", "safety_stock", "daily_consumption")
QUANTITIES = ("on_hand", "safety_stock", "daily_consumption")


class ExportError(ValueError):
    """The CSV export cannot be turned into a stock report; the message names the line."""


def read_positions(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Positions from CSV lines (header required, blank lines and ``#`` comments skipped)."""
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ExportError(f"header lacks column(s): {', '.join(missing)}")
    positions = []
    for number, row in enumerate(reader, start=2):
        position: dict[str, Any] = {c: (row[c] or "").strip() for c in COLUMNS}
        for name in QUANTITIES:
            try:
                position[name] = float(position[name])
            except ValueError:
                raise ExportError(f"line {number}: {name} is not a number") from None
        positions.append(position)
    if not positions:
        raise ExportError("the export has no positions")
    return positions


def build_stock_report(
    partner_id: str,
    positions: list[dict[str, Any]],
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The ``StockReported`` message (schema version 1) for one export."""
    stamp = occurred_at or datetime.now(UTC)
    if stamp.tzinfo is None:
        raise ExportError("occurred_at needs a timezone")
    return {
        "type": "StockReported",
        "schema_version": 1,
        "event_id": event_id or str(uuid.uuid4()),
        "partner_id": partner_id,
        "occurred_at": stamp.isoformat(),
        "positions": positions,
    }


def produce(bootstrap: str, report: dict[str, Any], topic: str | None = None,
            timeout: float = 30.0) -> tuple[int, int]:
    """Produce one report keyed by its partner id with acks=all to ``topic`` (default: the
    partner's own events topic); returns (partition, offset)."""
    topic = topic or topic_for(report["partner_id"])
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "message.timeout.ms": int(timeout * 1000),
            "client.id": f"partner-{report['partner_id']}",
        }
    )
    outcome: dict[str, Any] = {}

    def delivered(error: KafkaError | None, message: Message) -> None:
        outcome["error"] = error
        outcome["message"] = message

    producer.produce(
        topic,
        key=report["partner_id"].encode("utf-8"),
        value=json.dumps(report, separators=(",", ":")).encode("utf-8"),
        headers=[("content-type", b"application/json")],
        on_delivery=delivered,
    )
    remaining = producer.flush(timeout)
    if remaining or "message" not in outcome:
        raise RuntimeError(f"no acknowledgement from {bootstrap} within {timeout:g}s")
    if outcome["error"] is not None:
        raise RuntimeError(f"write refused: {outcome['error']}")
    message: Message = outcome["message"]
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return partition, offset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a stock export to a Verbund alliance.")
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the alliance's Kafka")
    parser.add_argument("--partner", required=True, help="your partner id, e.g. klinikum-nord")
    parser.add_argument("--csv", type=argparse.FileType("r", encoding="utf-8"),
                        default=sys.stdin, help="CSV export (default: stdin)")
    parser.add_argument("--topic", help="default: verbund.partner.<partner>.events")
    parser.add_argument("--dry-run", action="store_true", help="print the message, send nothing")
    args = parser.parse_args(argv)
    try:
        report = build_stock_report(args.partner, read_positions(args.csv))
    except ExportError as exc:
        print(f"partner_client: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(report, indent=2))
        return 0
    topic = args.topic or topic_for(args.partner)
    try:
        partition, offset = produce(args.bootstrap, report, topic)
    except RuntimeError as exc:
        print(f"partner_client: {exc}", file=sys.stderr)
        return 1
    print(f"sent {len(report['positions'])} positions as event {report['event_id']} "
          f"to {topic} partition {partition} offset {offset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
