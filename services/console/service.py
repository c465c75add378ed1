"""The console's Kafka side: follows the topics it shows and keeps the state the views need.

Every topic is read from the beginning with manual partition assignment (no consumer group:
each console process keeps the whole picture and commits nothing):

- ``verbund.ledger.changelog`` folded into an :class:`AllianceReplica` (freshness);
- ``verbund.alerts`` (open shortages), ``verbund.runs``, ``verbund.decisions`` and
  ``verbund.partner.orders`` folded into an :class:`OpsState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from schemas.alliance import Alliance
from services.common.kafka import assigned_consumer, stop_client
from services.common.logging import get_logger
from services.common.topics import ALERTS, DECISIONS, LEDGER_CHANGELOG, PARTNER_ORDERS, RUNS
from services.console import metrics
from services.console.views import (
    COORDINATOR,
    FIGURE_ROLES,
    ORDER_DETAIL_ROLES,
    PARTNER,
    OpsState,
    aggregates_view,
    board_view,
    contributions,
    decisions_view,
    freshness_view,
    partner_view,
    runs_view,
    summary_view,
    views_for_role,
)
from services.coordinator.replica import AllianceReplica

log = get_logger("console")

Handler = Callable[[int, int, bytes], bool]


class ConsoleService:
    def __init__(
        self,
        bootstrap: str,
        alliance: Alliance | None,
        stale_after: float,
        clock: Callable[[], float] = time.time,
        min_partners: int = 3,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.kafka_options = dict(kafka_options or {})  # kafka_client_options(settings)
        self.min_partners = min_partners
        self.alliance = alliance
        self.stale_after = stale_after
        self.clock = clock
        self.replica = AllianceReplica()
        self.ops = OpsState()
        self.version = 0
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._consumers: list[AIOKafkaConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        handlers: dict[str, Handler] = {
            LEDGER_CHANGELOG.name: self._on_changelog,
            ALERTS.name: self._json_handler(self.ops.apply_alert, b"Shortage"),
            RUNS.name: self._json_handler(self.ops.apply_run, b"RunUpdated"),
            DECISIONS.name: self._json_handler(self.ops.apply_decision, b"DecisionPublished"),
            PARTNER_ORDERS.name: self._json_handler(self.ops.apply_order, b"Order"),
        }
        for topic, handler in handlers.items():
            consumer = await self._consumer(topic)
            self._tasks.append(asyncio.create_task(self._follow(topic, consumer, handler)))
        self.ready.set()
        log.info("console_following", topics=sorted(handlers))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in self._consumers:
            await stop_client(consumer)

    async def _consumer(self, topic: str) -> AIOKafkaConsumer:
        consumer = await assigned_consumer(self.bootstrap, topic, "beginning", self.kafka_options)
        self._consumers.append(consumer)
        return consumer

    async def _follow(self, topic: str, consumer: AIOKafkaConsumer, handler: Handler) -> None:
        counter = metrics.RECORDS.labels(topic)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            changed = False
            for tp, records in batches.items():
                for record in records:
                    counter.inc()
                    if record.value is None:
                        continue
                    try:
                        changed = handler(tp.partition, record.offset, record.value) or changed
                    except Exception:  # a bad record must not stop the console
                        metrics.BAD_RECORDS.labels(topic).inc()
                        log.warning("record_skipped", topic=topic, offset=record.offset)
            if changed:
                self._notify()

    # -- inputs -----------------------------------------------------------------------------
    def _on_changelog(self, partition: int, offset: int, value: bytes) -> bool:
        self.replica.apply(partition, offset, value)
        return b'"seen"' in value

    @staticmethod
    def _json_handler(apply: Callable[[dict[str, Any]], bool], marker: bytes) -> Handler:
        def handle(partition: int, offset: int, value: bytes) -> bool:
            if marker not in value:
                return False  # e.g. balance reports on verbund.alerts: not decoded at all
            decoded = orjson.loads(value)
            return isinstance(decoded, dict) and apply(decoded)

        return handle

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, seen_version: int, timeout: float) -> int:
        """Wait until the state moves past ``seen_version`` (or ``timeout``); the version."""
        if self.version == seen_version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

    # -- views ------------------------------------------------------------------------------
    def last_seen(self) -> dict[str, float]:
        seen: dict[str, float] = {}
        for state in self.replica.states.values():
            for partner, as_of in state.last_seen.items():
                if as_of > seen.get(partner, float("-inf")):
                    seen[partner] = as_of
        return seen

    def board(self) -> dict[str, Any]:
        return board_view(list(self.ops.shortages.values()), self.alliance)

    def freshness(self) -> dict[str, Any]:
        removed = {p for state in self.replica.states.values() for p in state.removed}
        return freshness_view(
            self.last_seen(), self.alliance, self.clock(), self.stale_after, removed
        )

    def runs(self, role: str = COORDINATOR) -> list[dict[str, Any]]:
        """Runs as ``role`` sees them (failed runs' details: coordinators only)."""
        return runs_view(
            list(self.ops.runs.values()), self.ops.decisions, full=role in FIGURE_ROLES
        )

    def decisions(self, with_orders: bool = True, figures: bool = True) -> list[dict[str, Any]]:
        return decisions_view(
            list(self.ops.decisions.values()),
            list(self.ops.orders.values()),
            with_orders,
            figures,
        )

    def aggregates(self) -> dict[str, Any]:
        items = contributions(
            list(self.replica.states.values()), list(self.ops.shortages.values()), self.alliance
        )
        return aggregates_view(items, self.min_partners)

    def mine(self, partner_id: str) -> dict[str, Any]:
        return partner_view(
            partner_id,
            list(self.replica.states.values()),
            list(self.ops.shortages.values()),
            list(self.ops.orders.values()),
            self.alliance,
        )

    def view(self, name: str, role: str, principal: str) -> Any:
        """One named view as ``role`` may see it (callers check :func:`views_for_role`)."""
        if name == "mine":
            return self.mine(principal)
        if name == "decisions":
            return self.decisions(
                with_orders=role in ORDER_DETAIL_ROLES, figures=role in FIGURE_ROLES
            )
        if name == "summary":
            return summary_view(self.board(), self.freshness(), self.runs(role))
        builders: dict[str, Callable[[], Any]] = {
            "board": self.board,
            "aggregates": self.aggregates,
            "freshness": self.freshness,
            "runs": lambda: self.runs(role),
        }
        return builders[name]()

    def views_for(self, role: str, principal: str) -> dict[str, Any]:
        """Every view ``role`` may see, for the live page (partners: only their own)."""
        names = views_for_role(role)
        result: dict[str, Any] = {
            "version": self.version,
            "generated_at": self.clock(),
            "alliance": self.alliance.name if self.alliance else None,
            "role": role,
        }
        if role != PARTNER:
            board, freshness, runs = self.board(), self.freshness(), self.runs(role)
            cache = {"board": board, "freshness": freshness, "runs": runs}
            cache["summary"] = summary_view(board, freshness, runs)
            for name in names:
                result[name] = cache[name] if name in cache else self.view(name, role, principal)
        else:
            result["mine"] = self.mine(principal)
        return result

    def all_views(self) -> dict[str, Any]:
        """Every view, as a coordinator sees them."""
        return self.views_for("coordinator", "")
