"""The coordinator service: Kafka consumers and producer around the pure :class:`Coordinator`.

- folds ``verbund.ledger.changelog`` into an :class:`AllianceReplica` (the snapshot source);
- evaluates automatic triggers on ``verbund.alerts``;
- applies ``OrderAcknowledged`` events from ``verbund.partner.events``;
- keeps the supplier quotes of joint purchasing pools (``verbund.purchasing.quotes``);
- solves off the event loop, records every run for replay, publishes decisions and orders;
- checkpoints run state to disk (:mod:`services.coordinator.checkpoint`), so a restart
  carries on with the runs in progress and with the answers sent meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from protocols.run import solve
from schemas.alerts import DeadLetter
from schemas.alliance import Alliance
from schemas.coordination import ApproveRun, RejectRun, RunState, TriggerProtocol
from schemas.events import OrderAcknowledged
from schemas.protocol import Protocol
from schemas.purchasing import SupplierQuoteSet
from services.common.dead_letters import kept_original
from services.common.failpoints import crash_point
from services.common.gc_control import QuietCollector
from services.common.kafka import assigned_consumer, durable_producer, stop_client
from services.common.logging import get_logger
from services.common.text import bounded_text
from services.common.topics import (
    ALERTS,
    COMMANDS,
    DEAD_LETTERS,
    LEDGER_CHANGELOG,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    QUOTES,
)
from services.coordinator import metrics
from services.coordinator.checkpoint import Checkpoints, checkpoint_bytes, restore_into
from services.coordinator.core import Coordinator, Publish, Run, recover
from services.coordinator.publication import Publications, TickBacklog
from services.coordinator.quotes import QuoteBook
from services.coordinator.replica import AllianceReplica
from services.coordinator.snapshot import build_snapshot
from services.coordinator.store import RunStore
from services.coordinator.triggers import evaluate
from services.ledger.recovery import append_markers, read_changelogs

log = get_logger("coordinator")

#: Longest trigger or reject reason kept (free text from a coordinator).
MAX_REASON_CHARS = 500

#: Longest pause before answer effects the broker refused are sent again.
MAX_EFFECTS_RETRY_S = 5.0


class CoordinatorService:
    def __init__(
        self,
        bootstrap: str,
        alliance: Alliance,
        protocols: dict[str, Protocol],
        store: RunStore,
        tick_seconds: float = 1.0,
        kafka_options: Mapping[str, Any] | None = None,
        checkpoints: Checkpoints | None = None,
        collector: QuietCollector | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.kafka_options = dict(kafka_options or {})  # kafka_client_options(settings)
        self.alliance = alliance
        self.core = Coordinator(protocols)
        self.replica = AllianceReplica()
        self.quotes = QuoteBook()
        self.store = store
        self.tick_seconds = tick_seconds
        self.producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[AIOKafkaConsumer] = []
        self._solving: set[str] = set()
        self._solve_later: set[str] = set()  # runs to solve on the next tick
        self._outbox: list[Publish] = []
        self._tick_backlog = TickBacklog()  # expiry notices the broker refused, their re-plans
        self.checkpoints = checkpoints
        # full garbage collections between runs (the process entry defers the automatic ones)
        self.collector = collector
        # checkpoints hold only published state: runs changed but not yet published are held
        # back, and answers count as read once their effects are published
        self._dirty: set[str] = set()  # runs changed (and published) since the last checkpoint
        # runs changed by answers (or commands) whose effects are queued, not yet published:
        # run -> where its last queued message ends (counted over all messages ever queued)
        self._answered: dict[str, int] = {}
        self._outbox_sent = 0  # messages taken out of the outbox, published
        # runs being published (held out of checkpoints), one publication per run at a time,
        # and the decisions to publish again (refused by the broker, cut short by a stop)
        self.publications = Publications()
        self._answers_read: dict[int, int] = {}  # partner-events partition -> next offset
        self._answers_fetched: dict[int, int] = {}  # read, effects not yet published
        self._answers_saved: dict[int, int] = {}
        self._checkpoint_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()  # one publication of answer effects at a time
        self._effects_pause = 0.0  # after the broker refused answer effects (grows)
        self._retry_effects_at = 0.0  # monotonic time of the next attempt
        self._republishing = asyncio.Lock()
        self.ready = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self.producer = durable_producer(self.bootstrap, self.kafka_options)
        await self.producer.start()
        partitions = list(range(LEDGER_CHANGELOG.partitions))
        log.debug("replica_loading", partitions=len(partitions))
        records = await read_changelogs(self.bootstrap, partitions, options=self.kafka_options)
        log.debug("replica_loaded")
        for partition, raws in records.items():
            for offset, raw in enumerate(raws):
                self.replica.apply(partition, offset, raw)
            # the recovery marker follows the records read
            self.replica.offsets[partition] = len(raws) + 1
        quotes = await read_changelogs(self.bootstrap, [0], QUOTES.name, self.kafka_options)
        self.quotes.load(quotes[0])
        changelog = await self._consumer(LEDGER_CHANGELOG.name, self.replica.offsets)
        log.debug("consumer_ready", topic=LEDGER_CHANGELOG.name)
        alerts = await self._consumer(ALERTS.name, None)
        log.debug("consumer_ready", topic=ALERTS.name)
        recovered, answers_from = self.checkpoints.load() if self.checkpoints else ([], {})
        recover(recovered, lambda run_id, revision: self.store.path(run_id, revision).exists())
        restore_into(self.core, recovered)
        self.publications.unpublished |= {r.run_id for r in recovered if r.publish_pending}
        if answers_from is None:  # unreadable offsets: answers are idempotent, read them all
            answers_start: str | dict[int, int] | None = "beginning"
        else:
            answers_start = answers_from or None
        acks = await self._consumer(PARTNER_EVENTS.name, answers_start)
        self._answers_read = {tp.partition: await acks.position(tp) for tp in acks.assignment()}
        log.debug("consumer_ready", topic=PARTNER_EVENTS.name)
        self._tasks = [
            asyncio.create_task(self._follow(changelog, self._on_changelog)),
            asyncio.create_task(self._follow(alerts, self._on_alert)),
            asyncio.create_task(self._follow(acks, self._on_partner_event)),
            asyncio.create_task(self._ticker()),
        ]
        self.ready.set()
        await self._republish()  # decisions a stop may have cut short
        for run in recovered:  # a solve that a stop interrupted is done again
            if run.state is RunState.SOLVING:
                self._schedule_solve(run.run_id, run.triggered_at)
        log.info(
            "coordinator_ready",
            protocols=sorted(self.core.protocols),
            changelog_records=sum(len(r) for r in records.values()),
            supplier_quotes=len(self.quotes.quotes),
            runs_recovered=len(recovered),
            runs_active=len(self.core.active_scopes),
        )

    async def stop(self) -> None:
        stopped: set[asyncio.Task[None]] = set()
        while pending := [t for t in self._tasks if t not in stopped]:  # new ones too
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            stopped.update(pending)
        self._retry_effects_at = 0.0  # one last attempt, pause or not
        with contextlib.suppress(Exception):  # answers whose effects are not out yet
            await self._flush_answers()
        await self._checkpoint()
        for consumer in self._consumers:
            await stop_client(consumer)
        if self.producer is not None:
            await stop_client(self.producer)

    async def _consumer(self, topic: str, offsets: str | dict[int, int] | None) -> AIOKafkaConsumer:
        consumer = await assigned_consumer(
            self.bootstrap,
            topic,
            "end" if offsets is None else offsets,
            self.kafka_options,
            fetch_max_wait_ms=50,
        )
        self._consumers.append(consumer)
        return consumer

    async def _follow(self, consumer: AIOKafkaConsumer, handler: Any) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        await handler(tp.partition, record.offset, record.value, record.key)
                    except Exception:  # a bad record must not stop the coordinator
                        log.exception("record_failed", topic=tp.topic, offset=record.offset)
                if tp.topic == PARTNER_EVENTS.name and records:
                    self._answers_fetched[tp.partition] = records[-1].offset + 1
            if not self._flush_lock.locked():  # a flush waiting for the broker: read on
                await self._flush_answers()

    async def _flush_answers(self) -> None:
        """Publish what the answers of a fetched batch caused (together), then count them as
        read: a checkpoint never holds an answer whose effects were not published.

        When the broker refuses, the effects stay queued (in order, before later ones) and
        the answers unread; they are sent again by a later flush, after a pause that grows
        to :data:`MAX_EFFECTS_RETRY_S` (duplicates are possible: at-least-once)."""
        async with self._flush_lock:
            if self._outbox and time.monotonic() < self._retry_effects_at:
                return
            outbox, answered = list(self._outbox), set(self._answered)
            fetched = dict(self._answers_fetched)
            if outbox:
                try:
                    await self._publish(outbox)
                except Exception:
                    self._effects_pause = min(MAX_EFFECTS_RETRY_S, 2 * self._effects_pause or 0.2)
                    self._retry_effects_at = time.monotonic() + self._effects_pause
                    log.exception(
                        "answer_effects_publish_failed",
                        messages=len(outbox),
                        retry_in_s=self._effects_pause,
                    )
                    return
                del self._outbox[: len(outbox)]
                self._outbox_sent += len(outbox)
                self._effects_pause = 0.0
            # changed by answers now counted as read: dirty, so that a checkpoint keeps the
            # offsets back while such a run is still held (it has later messages queued)
            self._dirty |= answered
            for run_id in [r for r, end in self._answered.items() if end <= self._outbox_sent]:
                del self._answered[run_id]  # every message queued for it is out
            self._answers_read.update(fetched)
            for partition, offset in fetched.items():
                if self._answers_fetched.get(partition) == offset:
                    del self._answers_fetched[partition]

    async def _checkpoint(self) -> None:
        """Write the runs changed and published since the last checkpoint. One at a time;
        documents are made on the event loop (consistent), only the writing runs in a thread."""
        if self.checkpoints is None:
            return
        async with self._checkpoint_lock:
            held = self._answered.keys() | self.publications.held_ids() | self._tick_backlog.runs
            # a run held back may carry answers already counted as read: the offsets on disk
            # stay where they were until it is written (answers are applied idempotently, so
            # a restart reads those again)
            answers = self._answers_saved if self._dirty & held else dict(self._answers_read)
            ready = sorted(r for r in self._dirty - held if r in self.core.runs)
            if not ready and answers == self._answers_saved:
                return
            documents = {r: checkpoint_bytes(self.core.runs[r]) for r in ready}
            self._dirty.difference_update(ready)
            try:
                await asyncio.to_thread(self.checkpoints.save, documents, answers)
                self._answers_saved = answers
            except OSError:
                log.exception("checkpoint_failed", runs=len(documents))
                self._dirty.update(documents)

    # -- inputs -----------------------------------------------------------------------------
    async def _on_changelog(
        self, partition: int, offset: int, value: bytes | None, key: bytes | None = None
    ) -> None:
        if value:
            self.replica.apply(partition, offset, value)

    async def _on_alert(
        self, partition: int, offset: int, value: bytes | None, key: bytes | None = None
    ) -> None:
        if not value or b'"ShortageDetected"' not in value:
            return
        alert = orjson.loads(value)
        await self._caught_up(
            str(alert.get("partner_id", "")), str(alert.get("source_event_id", ""))
        )
        material = str(alert.get("material_id", ""))
        firings = evaluate(
            alert, self.core.protocols.values(), self.alliance, self.replica.balance(material)
        )
        for firing in firings:
            await self.trigger(firing.protocol_id, f"rule:{firing.protocol_id}", firing.reason)

    async def _sync_replica(self, timeout: float = 5.0) -> None:
        """Make the snapshot consistent with everything the ledger wrote before this moment:
        append a marker to each changelog partition and wait until the replica passed it."""
        assert self.producer is not None
        partitions = list(range(LEDGER_CHANGELOG.partitions))
        markers = await append_markers(self.producer, LEDGER_CHANGELOG.name, partitions, "sync")
        deadline = time.monotonic() + timeout
        while any(self.replica.offsets.get(p, 0) <= offset for p, offset in markers.items()):
            if time.monotonic() > deadline:
                log.warning("replica_sync_timeout", markers=markers)
                return
            await asyncio.sleep(0.002)

    async def _caught_up(self, partner_id: str, event_id: str, timeout: float = 5.0) -> None:
        """Wait until the replica holds the event behind an alert (alerts and changelog are
        separate topics, so the alert can arrive first); the snapshot then includes it."""
        deadline = time.monotonic() + timeout
        while not self.replica.has_event(partner_id, event_id):
            if time.monotonic() > deadline:
                log.warning("replica_behind_alert", source_event_id=event_id)
                return
            await asyncio.sleep(0.01)

    async def _on_partner_event(
        self, partition: int, offset: int, value: bytes | None, key: bytes | None = None
    ) -> None:
        if not value or b'"OrderAcknowledged"' not in value:
            return
        try:
            ack = OrderAcknowledged.model_validate_json(value)
        except ValueError:
            return  # the ledger dead-letters invalid partner events
        if key is not None and key != ack.partner_id.encode():
            return  # not that partner's answer: the ledger dead-letters it (key_mismatch)
        problem = self.core.answer_problem(ack.order_id, ack.partner_id, ack.accepted)
        if problem is not None:  # no effect; kept with its reason (with the batch's effects)
            reason, detail = problem
            metrics.ANSWERS_REFUSED.labels(reason).inc()
            log.warning("answer_refused", reason=reason, partner=ack.partner_id, offset=offset)
            self._outbox.append(_dead_letter(partition, offset, key, value, reason, detail))
            return
        messages, replan = self.core.acknowledge(
            ack.order_id, ack.partner_id, ack.accepted, ack.reason, time.time()
        )
        run_id = self.core.order_index.get(ack.order_id)
        self._queue(run_id if messages else None, messages)  # until the batch's is published
        if replan and run_id:
            self._schedule_solve(run_id, time.time())

    # -- commands ---------------------------------------------------------------------------
    async def trigger(self, protocol_id: str, requested_by: str, reason: str) -> tuple[Run, bool]:
        now = time.time()
        # before the core sees it: a reason that cannot be serialised (a lone surrogate from a
        # JSON escape) would fail after the run was created, leaving it unannounced
        reason = bounded_text(reason, MAX_REASON_CHARS)
        run, started, messages = self.core.trigger(protocol_id, reason or requested_by, now)
        command = TriggerProtocol(
            command_id=_command_id(),
            protocol_id=protocol_id,
            requested_by=_principal(requested_by),
            reason=reason[:500],
            at=_dt(now),
        )
        await self._announce(
            run.run_id, [Publish(COMMANDS.name, run.run_id.encode(), _json(command)), *messages]
        )
        if started:
            metrics.RUNS.labels(protocol_id, run.state.value).inc()
            log.info("run_started", run_id=run.run_id, protocol=protocol_id, trigger=reason)
            if run.state is RunState.SOLVING:
                self._schedule_solve(run.run_id, now)
        return run, started

    async def approve(self, run_id: str, principal: str, token_id: str) -> Run:
        now = time.time()
        messages = self.core.approve(run_id, principal, token_id, now)
        run = self.core.runs[run_id]
        command = ApproveRun(
            command_id=_command_id(),
            run_id=run_id,
            principal=principal,
            token_id=token_id,
            at=_dt(now),
        )
        await self._announce(
            run_id, [Publish(COMMANDS.name, run_id.encode(), _json(command)), *messages]
        )
        if run.state is RunState.SOLVING:
            run.triggered_at = now  # decision latency counts from the last approval
            self._schedule_solve(run_id, now)
        else:
            await self._checkpoint()
        return run

    async def reject(self, run_id: str, principal: str, token_id: str, reason: str) -> Run:
        now = time.time()
        # as in trigger: the core changes the run before it is announced
        reason = bounded_text(reason, MAX_REASON_CHARS)
        messages = self.core.reject(run_id, principal, reason, now)
        command = RejectRun(
            command_id=_command_id(),
            run_id=run_id,
            principal=principal,
            token_id=token_id,
            reason=reason,
            at=_dt(now),
        )
        await self._announce(
            run_id, [Publish(COMMANDS.name, run_id.encode(), _json(command)), *messages]
        )
        await self._checkpoint()
        metrics.RUNS.labels(self.core.runs[run_id].protocol.id, "rejected").inc()
        return self.core.runs[run_id]

    async def _announce(self, run_id: str, messages: list[Publish]) -> None:
        """Publish a command and what it changed, after the core changed the run. When the
        broker refuses, the messages join the queued answer effects (sent again, in order,
        by :meth:`_flush_answers`) and the run is held out of checkpoints until they are
        out: the run goes on (it is solved, its scope stays taken) instead of waiting for a
        restart. Behind effects already queued, they queue too (their order is kept)."""
        if not self._outbox:
            try:
                await self._publish(messages)
            except Exception:
                log.exception("command_publish_failed", run_id=run_id, messages=len(messages))
            else:
                self._dirty.add(run_id)
                return
        self._queue(run_id, messages)

    def _queue(self, run_id: str | None, messages: list[Publish]) -> None:
        """Queue messages behind the answer effects; their run is held until they are out."""
        self._outbox.extend(messages)
        if run_id:
            self._answered[run_id] = self._outbox_sent + len(self._outbox)

    async def _effects_out(self, run_id: str) -> bool:
        """Whether nothing queued for the run is waiting (after one flush attempt): its
        next decision must not reach Kafka before what led to it."""
        if run_id in self._answered:
            await self._flush_answers()
        return run_id not in self._answered

    async def set_quote(self, quote: SupplierQuoteSet) -> None:
        """Record a supplier quote (acknowledged by the broker) and use it from now on."""
        key = f"{quote.supplier_id}/{quote.material_id}".encode()
        await self._publish([Publish(QUOTES.name, key, _json(quote))])
        self.quotes.put(quote)
        log.info(
            "supplier_quote_set" if quote.tiers else "supplier_quote_withdrawn",
            supplier=quote.supplier_id,
            material=quote.material_id,
            tiers=len(quote.tiers),
            by=quote.set_by,
        )

    # -- solving ----------------------------------------------------------------------------
    def _schedule_solve(self, run_id: str, requested_at: float) -> None:
        if run_id in self._solving:
            return
        self._solving.add(run_id)
        self.core.runs[run_id].triggered_at = requested_at
        self._tasks.append(asyncio.create_task(self._solve(run_id)))

    async def _solve(self, run_id: str) -> None:
        # the run is held out of checkpoints from its new revision until its messages are
        # out; released on every path (a stop cancels the task)
        with contextlib.ExitStack() as hold:
            await self._solve_held(run_id, hold)

    async def _solve_held(self, run_id: str, hold: contextlib.ExitStack) -> None:
        run = self.core.runs[run_id]
        protocol = run.protocol
        started = time.perf_counter()
        phases: dict[str, float] = {}
        held = False
        try:
            if not await self._effects_out(run_id):  # approval or decline not announced yet
                log.warning(
                    "solve_deferred", run_id=run_id, error="effects queued", retry="next tick"
                )
                self._solve_later.add(run_id)
                return
            try:
                await self._sync_replica()
            except KafkaError as exc:  # the broker is unreachable: not the run's failure
                log.warning("solve_deferred", run_id=run_id, error=repr(exc), retry="next tick")
                self._solve_later.add(run_id)
                return
            phases["sync"] = time.perf_counter() - started
            now = time.time()
            offsets = dict(self.replica.offsets)
            snapshot = build_snapshot(
                self.alliance,
                self.replica.states.values(),
                protocol,
                _today(now),
                now,
                run.adjustments,
                self.quotes.offers(None, _today(now)),
            )
            phases["snapshot"] = time.perf_counter() - started - sum(phases.values())
            result = await asyncio.to_thread(solve, protocol, snapshot, run_id=run_id)
            phases["solve"] = time.perf_counter() - started - sum(phases.values())
            seconds = time.perf_counter() - started
            hold.enter_context(self.publications.held([run_id]))
            held = True
            messages = self.core.solved(run_id, result, seconds, time.time())
            # this task publishes the new revision; an older one is not published again
            self.publications.unpublished.discard(run_id)
            # before anything goes out, off the loop and side by side: the run record (every
            # published decision is reproducible) and the run marked publish_pending (a
            # restart publishes it again). A decision without its record was never
            # published: a restart takes it back (take_back_undecided).
            await asyncio.gather(
                asyncio.to_thread(
                    self.store.save,
                    result.record,
                    run.revision,
                    protocol,
                    snapshot,
                    offsets,
                    result.snapshot_json,
                ),
                self._save_run(run_id),
            )
            phases["record"] = time.perf_counter() - started - sum(phases.values())
        except Exception as exc:
            log.exception("solve_failed", run_id=run_id)
            if not held:
                hold.enter_context(self.publications.held([run_id]))
            messages = self.core.failed(run_id, repr(exc), time.time())
            self.publications.unpublished.discard(run_id)
            seconds = time.perf_counter() - started
        finally:
            self._solving.discard(run_id)
        revision = run.revision
        crash_point("coordinator.before_publish")
        delivered = await self._publish_decision(run_id, revision, messages)
        if not delivered and run.state is RunState.FAILED and run.revision == revision:
            self._queue(run_id, messages)  # a failure notice is not republished: sent in order
        hold.close()
        phases["publish"] = time.perf_counter() - started - sum(phases.values())
        if delivered and run.revision == revision:  # not superseded meanwhile
            self._delivered(run)
        self._dirty.add(run_id)
        await self._checkpoint()
        metrics.SOLVE_SECONDS.labels(protocol.id).observe(seconds)
        log.info(
            "run_solved",
            run_id=run_id,
            protocol=protocol.id,
            state=run.state.value,
            revision=run.revision,
            seconds=round(seconds, 3),
            orders=len(run.current_orders()),
            phases_ms={k: round(v * 1000, 1) for k, v in phases.items()},
            published=delivered,
        )

    def _delivered(self, run: Run) -> None:
        """Metrics of a decision whose messages are out (at the first successful attempt)."""
        if run.decision is not None and run.state is not RunState.FAILED:
            metrics.TRIGGER_TO_DECISION.observe(max(0.0, time.time() - run.triggered_at))
        metrics.RUNS.labels(run.protocol.id, run.state.value).inc()

    def expire(self, now: float) -> list[str]:
        """Retention: finished runs and their records older than the store's window."""
        days = self.store.retention_days
        if days is None:
            return []
        forgotten = self.core.forget_finished(now - days * 86_400)
        self.publications.forget(forgotten)
        if self.checkpoints is not None:
            self.checkpoints.forget(forgotten)
        expired = set(self.store.expire(now)) | set(forgotten)
        if expired:
            log.info("runs_expired", runs=len(expired), days=days)
        return sorted(expired)

    async def _publish_decision(self, run_id: str, revision: int, messages: list[Publish]) -> bool:
        """Publish a revision's decision messages, one publication per run at a time (a run's
        messages go out in revision order); True once they are out."""
        async with self.publications.lock(run_id):
            return await self._send_decision(run_id, revision, messages)

    async def _send_decision(self, run_id: str, revision: int, messages: list[Publish]) -> bool:
        """The decision summary and run state first (operators, dashboards), then the orders;
        the caller holds the run's publication lock. When the broker refuses, the run's
        latest revision is published again on the next ticks (an older revision is
        superseded by the newer one's messages)."""
        first = [m for m in messages if m.topic != PARTNER_ORDERS.name]
        try:
            if not await self._effects_out(run_id):
                # not a failure: the run's answers must reach Kafka before its decision
                log.info(
                    "decision_publish_deferred",
                    run_id=run_id,
                    revision=revision,
                    reason="the run's queued answer effects are not out yet",
                )
                return self._keep_unpublished(run_id, revision)
            await self._publish(first)
            await self._publish([m for m in messages if m.topic == PARTNER_ORDERS.name])
        except Exception:
            log.exception("decision_publish_failed", run_id=run_id, revision=revision)
            return self._keep_unpublished(run_id, revision)
        if self.core.published(run_id, revision):
            self.publications.unpublished.discard(run_id)
        return True

    def _keep_unpublished(self, run_id: str, revision: int) -> bool:
        """Mark the run's latest revision for publication on a later tick; False."""
        run = self.core.runs.get(run_id)
        if run is not None and run.revision == revision:
            self.publications.unpublished.add(run_id)
        return False

    async def _republish(self) -> None:
        """Publish again the decisions whose publication failed or a stop may have cut short
        (same order ids; pending orders get a fresh deadline). Not a run being solved again:
        its new revision supersedes the old one. One pass at a time (start and ticks)."""
        if self._republishing.locked():
            return
        async with self._republishing:
            for run_id in sorted(self.publications.unpublished):
                run = self.core.runs.get(run_id)
                if run is None or not run.publish_pending or run_id in self._solving:
                    self.publications.unpublished.discard(run_id)
                    continue
                with self.publications.held([run_id]):
                    async with self.publications.lock(run_id):
                        # another publication may have ended while this one waited
                        if run_id not in self.publications.unpublished or not run.publish_pending:
                            continue
                        revision = run.revision
                        messages = self.core.republish(run_id, time.time())
                        delivered = await self._send_decision(run_id, revision, messages)
                if delivered:
                    log.info("decision_republished", run_id=run_id, revision=revision)
                    self._delivered(run)
                    self._dirty.add(run_id)
        await self._checkpoint()

    async def _save_run(self, run_id: str) -> None:
        """Write one run's checkpoint now, whatever else is held back."""
        if self.checkpoints is None:
            return
        async with self._checkpoint_lock:
            document = checkpoint_bytes(self.core.runs[run_id])
            try:
                await asyncio.to_thread(self.checkpoints.save, {run_id: document}, {})
            except OSError:  # the decision still goes out; only its crash safety is lost
                log.exception("checkpoint_failed", runs=1)

    async def _ticker(self) -> None:
        last_expiry = 0.0
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                last_expiry = await self._tick(last_expiry)
            except Exception:  # deadlines, retention and checkpoints must go on
                log.exception("tick_failed")

    async def _tick(self, last_expiry: float) -> float:
        now = time.time()
        if now - last_expiry >= 3600:
            last_expiry = now
            self.expire(now)
        published = {r.run_id for r in self.core.runs.values() if r.state is RunState.PUBLISHED}
        messages, replan = self.core.tick(now)
        # orders expired: their notices (with any the broker refused before) go out first,
        # then the runs count as changed and their re-plans start
        # (kept as the backlog until they are out: refused or cut short by a stop, their runs
        # stay out of checkpoints and are not re-planned)
        backlog = self._tick_backlog.join(messages, published if messages else set(), replan)
        self._tick_backlog = backlog
        with self.publications.held(published):
            try:
                await self._publish(backlog.messages)
            except Exception:  # sent with the next tick's
                log.exception("tick_publish_failed", messages=len(backlog.messages), retry=True)
            else:
                self._tick_backlog = TickBacklog()
                self._dirty |= backlog.runs
                for run_id in backlog.replan:
                    self._schedule_solve(run_id, now)
        for run_id in sorted(self._solve_later):  # deferred while the broker was unreachable
            self._solve_later.discard(run_id)
            run = self.core.runs.get(run_id)
            if run is not None and run.state is RunState.SOLVING:
                self._schedule_solve(run_id, run.triggered_at)
        if self.publications.unpublished:
            await self._republish()
        await self._checkpoint()
        self._collect_if_quiet()
        return last_expiry

    def _collect_if_quiet(self) -> None:
        if self.collector is None:
            return
        started = time.perf_counter()
        kind = self.collector.tick(busy=bool(self._solving) or self.publications.busy())
        if kind is not None:
            log.debug("gc_collected", kind=kind, ms=round((time.perf_counter() - started) * 1e3, 1))

    async def _publish(self, messages: list[Publish]) -> None:
        if not messages:
            return
        assert self.producer is not None
        pending = [await self.producer.send(m.topic, m.value, key=m.key) for m in messages]
        await asyncio.gather(*pending)


def _command_id() -> str:
    return f"cmd-{secrets.token_hex(8)}"


def _dead_letter(
    partition: int, offset: int, key: bytes | None, value: bytes, reason: str, detail: str
) -> Publish:
    """A partner answer that cannot take effect, for ``verbund.deadletter`` (answers are
    small: a valid ``OrderAcknowledged`` of a few hundred bytes, padding aside)."""
    original, errors = kept_original(value)
    letter = DeadLetter(
        source_topic=PARTNER_EVENTS.name,
        source_partition=partition,
        source_offset=offset,
        source_key=key.decode("utf-8", "replace") if key is not None else None,
        reason=f"{reason}: {detail}"[:2000],
        errors=errors,
        original_base64=original,
        service="coordinator",
        received_at=_dt(time.time()),
    )
    return Publish(DEAD_LETTERS.name, PARTNER_EVENTS.name.encode(), _json(letter))


def _principal(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name.lower())
    return cleaned[:64] if cleaned[:1].isalpha() else f"x{cleaned[:63]}"


def _json(event: Any) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _today(ts: float) -> date:
    return _dt(ts).date()
