"""Publishing decisions when the broker refuses them, and while the next revision of the
same run is solved (Kafka faked at the edge: a producer that holds back or refuses sends;
the service's own solve task runs, with the replica sync skipped and a fixed clock)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from protocols.run import solve
from schemas.coordination import RunState
from services.common.topics import DECISIONS, PARTNER_ORDERS
from services.coordinator.checkpoint import Checkpoints, run_from_document
from services.coordinator.core import Publish, Run
from services.coordinator.service import CoordinatorService
from services.coordinator.store import RunStore
from tests.unit.coordinator.fake_producer import FakeProducer
from tests.unit.coordinator.test_live_capacity_purchasing import (
    ALLIANCE,
    CAPACITY,
    CAPACITY_EVENTS,
    NOW,
    replica_after,
    snapshot_of,
)


class Clock:
    now = NOW + 60


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "time", lambda: c.now)
    return c


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> CoordinatorService:
    svc = CoordinatorService(
        "127.0.0.1:1",
        ALLIANCE,
        {CAPACITY.id: CAPACITY},
        RunStore(tmp_path / "runs"),
        checkpoints=Checkpoints(tmp_path / "state"),
    )
    svc.producer = FakeProducer()  # type: ignore[assignment]
    svc.replica = replica_after(CAPACITY_EVENTS)

    async def synced() -> None:
        return None

    monkeypatch.setattr(svc, "_sync_replica", synced)
    return svc


def _first_revision(svc: CoordinatorService) -> tuple[Run, list[Publish]]:
    run, _, _ = svc.core.trigger(CAPACITY.id, "manual", NOW)
    result = solve(CAPACITY, snapshot_of(svc.replica, CAPACITY))
    svc.store.save(result.record, 1, CAPACITY, snapshot_of(svc.replica, CAPACITY), {}, None)
    return run, svc.core.solved(run.run_id, result, 0.01, NOW)


def _decline_one(svc: CoordinatorService, messages: list[Publish]) -> None:
    order = next(
        o
        for o in (orjson.loads(m.value) for m in messages if m.topic == PARTNER_ORDERS.name)
        if o["must_answer"]
    )
    _, replan = svc.core.acknowledge(order["order_id"], order["recipient"], False, "no", NOW + 1)
    assert replan
    svc._schedule_solve(order["run_id"], NOW + 1)


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _pending_on_disk(tmp_path: Path, run: Run) -> bool:
    document = orjson.loads((tmp_path / "state" / f"{run.run_id}.json").read_bytes())
    return run_from_document(document).publish_pending


async def test_an_older_revision_going_out_does_not_mark_the_newer_one_published(
    service: CoordinatorService, tmp_path: Path
) -> None:
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    run, first = _first_revision(service)
    publishing = asyncio.create_task(service._publish_decision(run.run_id, 1, first))
    await asyncio.sleep(0.01)  # revision 1's orders are on their way
    _decline_one(service, first)  # a partner that got its order declines: re-plan
    producer.refuse = {2}  # the broker will refuse revision 2
    await _until(lambda: run.revision == 2)
    producer.gate.set()
    assert await publishing  # revision 1 is out ...
    await _until(lambda: run.run_id not in service._solving)
    await asyncio.gather(*service._tasks)
    assert run.publish_pending  # ... revision 2 is not
    assert _pending_on_disk(tmp_path, run)
    assert run.run_id in service.publications.unpublished
    assert producer.issued(2) == []

    producer.refuse = set()
    await service._republish()  # the next tick
    summaries = [m for m in producer.sent if m["topic"] == DECISIONS.name]
    assert [m["revision"] for m in summaries] == [1, 2] and not run.publish_pending
    assert not _pending_on_disk(tmp_path, run)
    # every revision 1 message went out before the first of revision 2
    revisions = [m["revision"] for m in producer.sent if "revision" in m]
    assert revisions == sorted(revisions)


async def test_a_tick_does_not_publish_a_revision_before_its_record_is_written(
    service: CoordinatorService, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, first = _first_revision(service)
    producer.refuse = {1}
    assert not await service._publish_decision(run.run_id, 1, first)  # refused
    producer.refuse = set()
    assert run.run_id in service.publications.unpublished

    record_written = threading.Event()
    save = service.store.save

    def slow_save(*args: Any) -> Any:
        assert record_written.wait(10)
        return save(*args)

    monkeypatch.setattr(service.store, "save", slow_save)
    _decline_one(service, first)
    await _until(lambda: run.revision == 2)  # solved, its record not yet written
    await service._republish()  # a tick meanwhile
    assert producer.issued(2) == [] and producer.issued(1) == []
    record_written.set()
    await asyncio.gather(*service._tasks)
    issued = producer.issued(2)
    assert issued and len(issued) == len(set(issued))  # each order once to each partner
    assert not run.publish_pending and not service.publications.busy()


async def test_expiries_the_broker_refuses_are_sent_later_and_only_then_re_planned(
    service: CoordinatorService, clock: Clock, tmp_path: Path
) -> None:
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    run, first = _first_revision(service)
    assert await service._publish_decision(run.run_id, 1, first)
    service._dirty.add(run.run_id)
    await service._checkpoint()
    on_disk = (tmp_path / "state" / f"{run.run_id}.json").read_bytes()
    producer.down = True
    clock.now = NOW + CAPACITY.response_hours * 3600 + 120  # nobody answered in time
    await service._tick(clock.now)  # the broker is down: the tick goes on without them
    await service._tick(clock.now)  # and again
    # no re-plan and no checkpoint ahead of the expiry notices
    assert run.run_id not in service._solving and run.revision == 1
    assert (tmp_path / "state" / f"{run.run_id}.json").read_bytes() == on_disk
    assert [m for m in producer.sent if m.get("type") == "OrderUpdated"] == []

    producer.down = False
    await service._tick(clock.now)  # the next tick: the expiries, then the re-plan
    await asyncio.gather(*service._tasks)
    expired = [k for k, m in enumerate(producer.sent) if m.get("type") == "OrderUpdated"]
    summaries = [k for k, m in enumerate(producer.sent) if m["topic"] == DECISIONS.name]
    assert expired and {producer.sent[k]["state"] for k in expired} == {"expired"}
    notices = [(producer.sent[k]["order_id"], producer.sent[k]["recipient"]) for k in expired]
    assert len(notices) == len(set(notices))  # each once to each partner
    assert [producer.sent[k]["revision"] for k in summaries] == [1, 2]
    assert max(expired) < summaries[1] and not run.publish_pending
    assert not _pending_on_disk(tmp_path, run) and run.revision == 2


async def test_a_solve_cancelled_by_a_stop_releases_its_hold(
    service: CoordinatorService, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _, _ = service.core.trigger(CAPACITY.id, "manual", NOW)
    writing, release = threading.Event(), threading.Event()
    save = service.store.save

    def slow_save(*args: Any) -> Any:
        writing.set()
        assert release.wait(10)
        return save(*args)

    monkeypatch.setattr(service.store, "save", slow_save)
    service._schedule_solve(run.run_id, NOW)
    await _until(writing.is_set)  # solved, held, writing its record
    assert service.publications.held_ids() == {run.run_id}
    await service.stop()
    release.set()
    assert not service.publications.busy()


async def test_a_solve_the_broker_cannot_sync_is_tried_again_not_failed(
    service: CoordinatorService, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    down = [True]

    async def sync() -> None:
        if down[0]:
            raise KafkaTimeoutError("broker unreachable")

    monkeypatch.setattr(service, "_sync_replica", sync)
    run, _, _ = service.core.trigger(CAPACITY.id, "manual", NOW)
    for k in range(run.approvals_needed):
        service.core.approve(run.run_id, f"coordinator-{k}", f"token-{k}", NOW)
    service._schedule_solve(run.run_id, NOW)
    await asyncio.gather(*service._tasks)
    assert run.state.value == "solving" and run.revision == 0  # still to do, not failed
    assert service.core.active_scopes == {run.scope_key: run.run_id}

    await service._tick(clock.now)  # still down: deferred again
    await asyncio.gather(*service._tasks)
    assert run.state.value == "solving" and run.revision == 0

    down[0] = False
    await service._tick(clock.now)
    await asyncio.gather(*service._tasks)
    assert run.revision == 1 and run.state.value == "published" and not run.publish_pending


async def test_answer_offsets_wait_for_a_run_held_back_from_the_checkpoint(
    service: CoordinatorService, tmp_path: Path
) -> None:
    run, _ = _first_revision(service)
    service._dirty.add(run.run_id)
    await service._checkpoint()
    service._answers_read = {0: 7}  # an answer to this run was applied meanwhile ...
    service._dirty.add(run.run_id)
    with service.publications.held([run.run_id]):  # ... while it is being published
        await service._checkpoint()
        assert Checkpoints(tmp_path / "state").load()[1] == {}  # not counted as read yet
    await service._checkpoint()
    assert Checkpoints(tmp_path / "state").load()[1] == {0: 7}


async def test_a_refused_decision_is_published_again_with_the_same_orders(
    service: CoordinatorService, tmp_path: Path
) -> None:
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.gate.set()
    producer.down = True
    run, _, _ = service.core.trigger(CAPACITY.id, "manual", NOW)
    result = solve(CAPACITY, snapshot_of(service.replica, CAPACITY))
    messages = service.core.solved(run.run_id, result, 0.01, NOW)
    await service._save_run(run.run_id)
    issued = {
        orjson.loads(m.value)["order_id"] for m in messages if m.topic == PARTNER_ORDERS.name
    }
    assert issued

    await service._publish_decision(run.run_id, run.revision, messages)
    assert run.publish_pending and run.state is RunState.PUBLISHED
    assert producer.sent == []
    # the checkpoint on disk says so too: a restart would publish it again
    document = orjson.loads((tmp_path / "state" / f"{run.run_id}.json").read_bytes())
    assert run_from_document(document).publish_pending

    await service._republish()  # a tick while the broker is still down: nothing changes
    assert run.publish_pending and producer.sent == []

    producer.down = False
    await service._republish()  # the next tick
    assert not run.publish_pending
    topics = [m["topic"] for m in producer.sent]
    assert topics[0] == DECISIONS.name
    again = {m["order_id"] for m in producer.sent if m["topic"] == PARTNER_ORDERS.name}
    assert again == issued
    document = orjson.loads((tmp_path / "state" / f"{run.run_id}.json").read_bytes())
    assert not run_from_document(document).publish_pending
    await service._republish()  # nothing left to publish
    assert [m["topic"] for m in producer.sent] == topics
