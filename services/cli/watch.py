"""``verbund watch``: follow alerts or dead letters on Kafka as readable lines."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from services.cli.console import say
from services.common.topics import ALERTS, DEAD_LETTERS

SEVERITY_MARK = {"watch": "·", "shortage": "!", "critical": "!!"}


def format_alert(value: bytes) -> str | None:
    """One line for a ShortageDetected/ShortageResolved alert; None for other alerts."""
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    kind = alert.get("type")
    where = f"{alert.get('partner_id')}/{alert.get('site_id')} {alert.get('material_id')}"
    if kind == "ShortageDetected":
        coverage = alert.get("coverage_days")
        cover = f", coverage {coverage:.1f} d" if isinstance(coverage, int | float) else ""
        before = alert.get("previous_severity")
        change = f" (was {before})" if before else ""
        mark = SEVERITY_MARK.get(alert.get("severity", ""), "")
        return (
            f"{mark:>2} SHORTAGE {alert.get('severity')}{change}: {where} "
            f"[{', '.join(alert.get('causes', []))}{cover}]"
        )
    if kind == "ShortageResolved":
        return f"ok RESOLVED: {where} (was {alert.get('previous_severity')})"
    return None


def format_dead_letter(value: bytes) -> str | None:
    try:
        letter = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    size = len(base64.b64decode(letter.get("original_base64", "")))
    return (
        f"DEAD LETTER {letter.get('source_topic')}[{letter.get('source_partition')}]"
        f"@{letter.get('source_offset')} key={letter.get('source_key')} ({size} bytes): "
        f"{letter.get('reason')}"
    )


FORMATTERS: dict[str, tuple[str, Callable[[bytes], str | None]]] = {
    "alerts": (ALERTS.name, format_alert),
    "deadletters": (DEAD_LETTERS.name, format_dead_letter),
}


async def follow(
    bootstrap: str,
    what: str,
    from_beginning: bool = False,
    stop: asyncio.Event | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    topic, formatter = FORMATTERS[what]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        **(options or {}),
    )
    await consumer.start()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    line = formatter(record.value) if record.value else None
                    if line:
                        say(line)
    finally:
        await consumer.stop()
