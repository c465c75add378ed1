"""The demo alliance's partner systems: send the simulation's events to Kafka.

With ``partner_topics`` each partner writes to its own ``verbund.partner.<id>.events`` (as
real partners do; the partner bridge forwards), else straight to ``verbund.partner.events``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.alliance import Alliance
from services.common.kafka import durable_producer
from services.common.logging import get_logger
from services.common.topics import PARTNER_EVENTS, partner_events_topic
from services.demo.quotes import seed_quotes
from services.demo.simulation import Simulation

log = get_logger("demo")


async def run_feed(
    bootstrap: str,
    alliance: Alliance,
    tick_seconds: float = 1.0,
    disruption_at_tick: int = 20,
    ticks: int | None = None,
    options: Mapping[str, Any] | None = None,
    partner_topics: bool = False,
) -> int:
    """Send one tick of partner events every ``tick_seconds``; returns events sent."""
    simulation = Simulation(alliance, disruption_at_tick=disruption_at_tick)
    producer = durable_producer(bootstrap, options)
    await producer.start()
    # the coordinator may still be starting; a daemon thread never delays the demo's stop
    threading.Thread(target=seed_quotes, name="demo-quotes", daemon=True).start()
    sent = 0
    try:
        while ticks is None or simulation.tick < ticks:
            events = simulation.step(datetime.now(UTC))
            pending = [
                await producer.send(
                    partner_events_topic(event.partner_id)
                    if partner_topics
                    else PARTNER_EVENTS.name,
                    event.model_dump_json().encode(),
                    key=event.partner_id.encode(),
                )
                for event in events
            ]
            await asyncio.gather(*pending)
            sent += len(events)
            if simulation.tick == disruption_at_tick:
                log.info(
                    "demo_disruption_started",
                    materials=list(simulation.disruption.materials),
                    regions=list(simulation.disruption.regions),
                )
            await asyncio.sleep(tick_seconds)
    finally:
        await producer.stop()
    return sent
