"""Queued answer effects and announcements against the run's decision, which the solve
task publishes on its own (Kafka faked at the edge; the service's own solve task runs,
replica sync skipped, fixed clock)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.coordination import RunState
from services.common.topics import COMMANDS, DECISIONS, PARTNER_ORDERS, RUNS
from services.coordinator import service as service_module
from services.coordinator.checkpoint import Checkpoints
from services.coordinator.service import CoordinatorService
from tests.unit.coordinator.fake_producer import FakeProducer
from tests.unit.coordinator.test_bad_requests_and_answers import _answer
from tests.unit.coordinator.test_live_capacity_purchasing import CAPACITY
from tests.unit.coordinator.test_publication import (  # noqa: F401 (fixtures)
    _first_revision,
    _until,
    clock,
    service,
)


def _of_run(producer: FakeProducer, run_id: str) -> list[dict[str, Any]]:
    return [m for m in producer.sent if m.get("run_id") == run_id]


async def _solved(svc: CoordinatorService, run_id: str) -> None:
    await _until(lambda: run_id not in svc._solving)
    await asyncio.gather(*svc._tasks)


async def _broker_back(svc: CoordinatorService, run_id: str) -> None:
    """What the service does next with the broker up: solves, answer-loop flushes (the
    pause over) and ticks (which solve what was deferred), a few rounds."""
    for _ in range(3):
        await _solved(svc, run_id)
        svc._retry_effects_at = 0.0
        await svc._flush_answers()
        await svc._tick(time.time())
    await _solved(svc, run_id)


async def test_an_approval_refused_once_is_not_announced_after_the_decision_it_allowed(
    service: CoordinatorService,  # noqa: F811
) -> None:
    """approve() queues [ApproveRun, RunUpdated(solving)] when the broker refuses them and
    schedules the solve at once; the solve publishes the decision directly, so the
    approval (and the run's 'solving' state) reach Kafka after the decision. The console
    keeps the last RunUpdated per run (Kafka order = the run's order): it shows the
    published run as 'solving'; the audit log has the decision before its approval."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, started = await service.trigger(CAPACITY.id, "coordinator-a", "drill")
    assert started and run.state is RunState.AWAITING_APPROVAL
    producer.down = True  # a short refusal, only for the approval's announcement
    await service.approve(run.run_id, "coordinator-b", "token-b")
    producer.down = False
    await _broker_back(service, run.run_id)
    assert run.state is RunState.PUBLISHED and not service._outbox

    sent = _of_run(producer, run.run_id)
    kinds = [(m["topic"], m["type"]) for m in sent]
    approve_at = kinds.index((COMMANDS.name, "ApproveRun"))
    decision_at = next(i for i, (topic, _) in enumerate(kinds) if topic == DECISIONS.name)
    assert approve_at < decision_at, kinds
    updates = [m for m in sent if m["topic"] == RUNS.name]
    assert updates[-1]["state"] == run.state.value, [u["state"] for u in updates]


async def test_a_decline_refused_once_is_not_published_after_the_replan_it_caused(
    service: CoordinatorService,  # noqa: F811
) -> None:
    """A decline's effects (order declined, others cancelled, run re-planning) are queued
    when refused, but _on_partner_event schedules the re-plan at once; revision 2 goes out
    before revision 1's decline, and the last RunUpdated on Kafka is the stale one."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, first = _first_revision(service)
    assert await service._publish_decision(run.run_id, 1, first)
    order = next(
        o
        for o in (orjson.loads(m.value) for m in first if m.topic == PARTNER_ORDERS.name)
        if o["must_answer"]
    )
    producer.down = True
    await service._on_partner_event(
        0, 5, _answer(order["order_id"], order["recipient"], False), order["recipient"].encode()
    )
    service._answers_fetched[0] = 6
    await service._flush_answers()  # refused: effects queued, re-plan already scheduled
    producer.down = False
    await _broker_back(service, run.run_id)
    assert run.revision == 2 and run.state is RunState.PUBLISHED and not service._outbox

    sent = _of_run(producer, run.run_id)
    declined_at = next(
        i
        for i, m in enumerate(sent)
        if m["type"] == "OrderUpdated" and m.get("order_id") == order["order_id"]
    )
    revision_2_at = next(
        i for i, m in enumerate(sent) if m["topic"] == DECISIONS.name and m["revision"] == 2
    )
    assert declined_at < revision_2_at
    updates = [m for m in sent if m["topic"] == RUNS.name]
    assert updates[-1]["state"] == run.state.value, [
        (u["state"], u.get("revision")) for u in updates
    ]


class _Changelog:
    """A consumer of two changelog batches, then nothing."""

    def __init__(self) -> None:
        from aiokafka.structs import TopicPartition

        from services.common.topics import LEDGER_CHANGELOG

        tp = TopicPartition(LEDGER_CHANGELOG.name, 0)
        self.batches = [{tp: [_Record(0)]}, {tp: [_Record(1)]}]

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> Any:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset, self.value, self.key = offset, b"x", None


async def test_a_slow_answer_flush_does_not_stop_the_changelog_loop(
    service: CoordinatorService,  # noqa: F811
) -> None:
    """Every _follow loop awaits _flush_answers, which now waits for _flush_lock: while
    the acks loop's flush waits for the broker, the changelog loop stops reading (the
    replica freezes, _sync_replica times out and solves use a stale snapshot). Before
    806b5c2 the other loops found the outbox taken and went on."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    _, first = _first_revision(service)
    service._outbox.extend(m for m in first if m.topic == PARTNER_ORDERS.name)
    flushing = asyncio.create_task(service._flush_answers())  # held back by the broker
    await asyncio.sleep(0.01)
    applied: list[int] = []

    async def on_changelog(partition: int, offset: int, value: Any, key: Any = None) -> None:
        applied.append(offset)

    loop = asyncio.create_task(service._follow(_Changelog(), on_changelog))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    try:
        assert applied == [0, 1]
    finally:
        loop.cancel()
        producer.gate.set()
        await flushing


async def test_a_run_is_released_once_its_own_queued_messages_are_out(
    service: CoordinatorService,  # noqa: F811
) -> None:
    """Effects queued for another run while a flush is under way do not hold back the run
    whose effects that flush published (under a steady stream of answers the queue is
    rarely empty, and a held run could not be re-planned)."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    _, first = _first_revision(service)
    orders = [m for m in first if m.topic == PARTNER_ORDERS.name]
    service._queue("run-a", orders[:1])
    flushing = asyncio.create_task(service._flush_answers())  # held back by the broker
    await asyncio.sleep(0.01)
    service._queue("run-b", orders[1:2])
    producer.gate.set()
    await flushing
    assert "run-a" not in service._answered and "run-a" in service._dirty
    assert "run-b" in service._answered and service._outbox == orders[1:2]
    await service._flush_answers()
    assert not service._answered and not service._outbox


async def test_an_answer_is_not_read_on_disk_before_its_run_is_written(
    service: CoordinatorService,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Answer A's effects go out with another loop's flush while answer B (same run)
    waits in the queue, then the broker refuses B's: the checkpoint may not count A as
    read while the run's document on disk still has A's order pending (a restart would
    skip A's answer and lose it)."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, first = _first_revision(service)
    assert await service._publish_decision(run.run_id, 1, first)
    service._dirty.add(run.run_id)
    await service._checkpoint()  # every order pending on disk
    a, b = [
        o
        for o in (orjson.loads(m.value) for m in first if m.topic == PARTNER_ORDERS.name)
        if o["must_answer"]
    ][:2]
    producer.gate.clear()  # the broker is slow
    await service._on_partner_event(
        0, 5, _answer(a["order_id"], a["recipient"], True, 1), a["recipient"].encode()
    )
    service._answers_fetched[0] = 6
    flushing = asyncio.create_task(service._flush_answers())  # another loop's flush
    await asyncio.sleep(0.01)
    await service._on_partner_event(
        0, 6, _answer(b["order_id"], b["recipient"], True, 2), b["recipient"].encode()
    )
    service._answers_fetched[0] = 7
    producer.gate.set()
    await flushing  # A's effects out, its answer counted as read
    producer.down = True  # B's refused
    service._retry_effects_at = 0.0
    await service._flush_answers()
    await service._checkpoint()

    runs, consumed = Checkpoints(tmp_path / "state").load()
    (on_disk,) = runs
    assert run.run_id in service._answered  # B still queued
    if consumed.get(0, 0) > 5:
        assert on_disk.orders[a["order_id"]].state.value == "accepted"


async def test_a_failure_notice_the_broker_refuses_is_sent_later(
    service: CoordinatorService,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed run is not republished (no decision to publish again): its RunUpdated
    joins the queued messages instead of being dropped."""
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(service_module, "solve", broken)
    run, started = await service.trigger(CAPACITY.id, "coordinator-a", "drill")
    assert started
    await service.approve(run.run_id, "coordinator-b", "token-b")  # the solve scheduled
    producer.down = True  # from the solve's notice on
    announced = len(producer.sent)
    await _solved(service, run.run_id)
    assert run.state is RunState.FAILED and len(producer.sent) == announced
    producer.down = False
    service._retry_effects_at = 0.0
    await service._flush_answers()
    updates = [m for m in _of_run(producer, run.run_id) if m["topic"] == RUNS.name]
    assert updates and updates[-1]["state"] == RunState.FAILED.value
    assert not service._outbox and run.run_id not in service._answered


async def test_a_decision_held_back_by_queued_answers_is_deferred_not_failed(
    service: CoordinatorService,  # noqa: F811
) -> None:
    """While the run's answer effects wait in the queue (broker down), its decision is not
    sent and is marked for a later tick; operators see a deferral, not a publish failure
    with a traceback. Once the broker is back, the queue and then the decision go out."""
    from structlog.testing import capture_logs

    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, first = _first_revision(service)
    producer.down = True
    service._queue(run.run_id, [first[0]])
    with capture_logs() as logs:
        assert not await service._publish_decision(run.run_id, 1, first)
    events = [e["event"] for e in logs]
    assert "decision_publish_deferred" in events and "decision_publish_failed" not in events
    assert run.run_id in service.publications.unpublished
    assert not any(m.get("run_id") == run.run_id for m in producer.sent)
    producer.down = False
    service._retry_effects_at = 0.0  # the pause after the refused flush is over
    assert await service._publish_decision(run.run_id, 1, first)
    assert not service._outbox and run.run_id not in service._answered
