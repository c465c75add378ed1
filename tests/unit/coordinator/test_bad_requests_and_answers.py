"""Bad input at the coordinator's edges: HTTP bodies coordinators send, and partner answers
to orders arriving on Kafka (Kafka faked at the edge)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from protocols.run import solve
from schemas.coordination import OrderState, RunState
from schemas.events import OrderAcknowledged
from services.common.topics import COMMANDS, DEAD_LETTERS, PARTNER_EVENTS, RUNS
from services.coordinator.core import TrackedOrder
from services.coordinator.service import CoordinatorService
from services.coordinator.store import RunStore
from tests.unit.access_apps import FOUR_EYES_PROTOCOL, Setup
from tests.unit.coordinator.fake_producer import FakeProducer
from tests.unit.coordinator.test_live_capacity_purchasing import (
    ALLIANCE,
    CAPACITY,
    CAPACITY_EVENTS,
    NOW,
    replica_after,
    snapshot_of,
)

# -- HTTP ----------------------------------------------------------------------------------


def _auth(setup: Setup) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {setup.tokens['coordinator']}",
        "Content-Type": "application/json",
    }


def _sent(setup: Setup, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for t, _, v in setup.producer.sent if t == topic]


async def test_a_deeply_nested_body_is_a_400_not_a_500(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    answer = await client.post(
        f"/v1/protocols/{FOUR_EYES_PROTOCOL}/runs", data="[" * 50_000, headers=_auth(setup)
    )
    assert answer.status == 400, await answer.text()
    assert (await answer.json())["reason"] == "invalid_json"
    assert not setup.coordinator.core.runs


async def test_a_lone_surrogate_in_a_trigger_reason_leaves_no_silent_run(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    answer = await client.post(
        f"/v1/protocols/{FOUR_EYES_PROTOCOL}/runs",
        data=b'{"reason": "drill \\ud800"}',
        headers=_auth(setup),
    )
    assert answer.status == 202, await answer.text()
    run_id = (await answer.json())["run_id"]
    # the run that now blocks the scope was announced and recorded as a command
    assert [c["type"] for c in _sent(setup, COMMANDS.name)] == ["TriggerProtocol"]
    assert [u["run_id"] for u in _sent(setup, RUNS.name)] == [run_id]


async def test_a_lone_surrogate_in_a_reject_reason_is_recorded_not_a_silent_reject(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    run_id = setup.new_run()
    answer = await client.post(
        f"/v1/runs/{run_id}/reject", data=b'{"reason": "no \\udfff"}', headers=_auth(setup)
    )
    assert answer.status == 200, await answer.text()
    assert setup.coordinator.core.runs[run_id].state is RunState.REJECTED
    assert [c["type"] for c in _sent(setup, COMMANDS.name)] == ["RejectRun"]
    assert [u["state"] for u in _sent(setup, RUNS.name)] == ["rejected"]


async def test_a_long_reject_reason_is_cut_in_the_run_detail_too(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    run_id = setup.new_run()
    answer = await client.post(
        f"/v1/runs/{run_id}/reject", json={"reason": "y" * 60_000}, headers=_auth(setup)
    )
    assert answer.status == 200
    (update,) = _sent(setup, RUNS.name)
    assert len(update["detail"]) < 600
    assert len(setup.coordinator.core.runs[run_id].detail) < 600


# -- partner answers on Kafka --------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> CoordinatorService:
    svc = CoordinatorService(
        "127.0.0.1:1", ALLIANCE, {CAPACITY.id: CAPACITY}, RunStore(tmp_path / "runs")
    )
    producer = FakeProducer()
    producer.gate.set()
    svc.producer = producer  # type: ignore[assignment]
    svc.replica = replica_after(CAPACITY_EVENTS)
    svc._schedule_solve = lambda run_id, requested_at: None  # type: ignore[method-assign]
    return svc


def _published_run(svc: CoordinatorService) -> list[TrackedOrder]:
    run, _, _ = svc.core.trigger(CAPACITY.id, "manual", NOW)
    result = solve(CAPACITY, snapshot_of(svc.replica, CAPACITY))
    svc.core.solved(run.run_id, result, 0.01, NOW)
    svc.core.published(run.run_id, run.revision)
    orders = run.current_orders()
    assert len({o.responder for o in orders}) >= 2, "two responders needed"
    return orders


def _answer(order_id: str, partner: str, accepted: bool, n: int = 1) -> bytes:
    return (
        OrderAcknowledged(
            event_id=f"ack-{partner}-{n}",
            partner_id=partner,
            occurred_at=datetime.fromtimestamp(NOW + 10, UTC),
            order_id=order_id,
            accepted=accepted,
        )
        .model_dump_json()
        .encode()
    )


async def _feed(svc: CoordinatorService, value: bytes, key: str | None, offset: int = 0) -> None:
    await svc._on_partner_event(0, offset, value, None if key is None else key.encode())
    await svc._flush_answers()


def _letters(svc: CoordinatorService) -> list[dict[str, Any]]:
    producer: FakeProducer = svc.producer  # type: ignore[assignment]
    return [m for m in producer.sent if m["topic"] == DEAD_LETTERS.name]


async def test_answers_nobody_may_give_are_dead_lettered_and_change_nothing(
    service: CoordinatorService,
) -> None:
    orders = _published_run(service)
    mine, other = orders[0], next(o for o in orders if o.responder != orders[0].responder)
    intruder = mine.responder

    await _feed(service, _answer("run-000000000000.r1.nothing", intruder, True), intruder, 1)
    await _feed(service, _answer(other.order_id, intruder, False), intruder, 2)
    assert other.state is OrderState.PENDING and mine.state is OrderState.PENDING
    letters = _letters(service)
    assert [letter["reason"].split(":")[0] for letter in letters] == [
        "unknown_order",
        "not_responder",
    ]
    assert [letter["source_offset"] for letter in letters] == [1, 2]
    assert all(letter["source_topic"] == PARTNER_EVENTS.name for letter in letters)
    assert all(letter["service"] == "coordinator" for letter in letters)
    assert orjson.loads(base64.b64decode(letters[1]["original_base64"]))["order_id"] == (
        other.order_id
    )


async def test_a_record_keyed_by_another_partner_is_not_taken_as_its_answer(
    service: CoordinatorService,
) -> None:
    orders = _published_run(service)
    victim = orders[0]
    await _feed(service, _answer(victim.order_id, victim.responder, False), "someone-else")
    assert victim.state is OrderState.PENDING
    assert service.core.runs[next(iter(service.core.runs))].state is RunState.PUBLISHED


async def test_late_and_repeated_answers(service: CoordinatorService) -> None:
    orders = _published_run(service)
    first = orders[0]
    partner = first.responder
    await _feed(service, _answer(first.order_id, partner, True), partner, 1)
    assert first.state is OrderState.ACCEPTED
    await _feed(service, _answer(first.order_id, partner, True, 2), partner, 2)  # a repeat
    assert _letters(service) == []  # at-least-once delivery: the same answer again is fine
    await _feed(service, _answer(first.order_id, partner, False, 3), partner, 3)  # changed mind
    assert first.state is OrderState.ACCEPTED
    (letter,) = _letters(service)
    assert letter["reason"].startswith("order_closed")

    pending = next(o for o in orders if o.state is OrderState.PENDING)
    service.core.tick(pending.respond_by + 1)  # expires, the run re-plans
    assert pending.state is OrderState.EXPIRED
    await _feed(service, _answer(pending.order_id, pending.responder, True, 4), None, 4)
    assert pending.state is OrderState.EXPIRED
    assert [letter["reason"].split(":")[0] for letter in _letters(service)] == [
        "order_closed",
        "order_closed",
    ]


async def test_malformed_answers_never_stop_other_answers(
    service: CoordinatorService,
) -> None:
    orders = _published_run(service)
    order = orders[0]
    for offset, junk in enumerate(
        [
            b'{"type": "OrderAcknowledged"',
            b'"OrderAcknowledged"',
            b'{"type": "OrderAcknowledged", "order_id": 5}',
            b"\xff\xfe OrderAcknowledged",
        ]
    ):
        await _feed(service, junk, order.responder, offset)
    await _feed(service, _answer(order.order_id, order.responder, True), order.responder, 9)
    assert order.state is OrderState.ACCEPTED


async def test_a_broker_refusing_an_answers_effects_keeps_them_until_it_takes_them(
    service: CoordinatorService,
) -> None:
    """The answer-reading loop publishes each batch's effects; a refusal must neither end
    that loop (the exception used to escape it) nor lose the effects or count the answers
    as read before their effects are out."""
    orders = _published_run(service)
    order = orders[0]
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.down = True
    service._answers_fetched[0] = 8
    await _feed(service, _answer(order.order_id, order.responder, False), order.responder, 7)
    assert order.state is OrderState.DECLINED
    assert service._answers_read.get(0, 0) < 8  # not read: its effects are not out
    run_id = service.core.order_index[order.order_id]
    assert run_id in service._answered  # held out of checkpoints
    await service._flush_answers()  # the pause after a refusal: no new attempt, no error
    producer.down = False
    service._retry_effects_at = 0.0  # the pause is over
    await service._flush_answers()
    assert service._answers_read[0] == 8
    assert run_id not in service._answered
    assert any(m.get("order_id") == order.order_id for m in producer.sent)


async def test_a_trigger_the_broker_refuses_to_announce_still_runs_and_is_announced_later(
    service: CoordinatorService,
) -> None:
    """Trigger and approval change the core before they are announced. When the broker
    refused the announcement, the run used to stay unsolved with its scope held until a
    restart."""
    scheduled: list[str] = []
    service._schedule_solve = lambda run_id, requested_at: scheduled.append(run_id)  # type: ignore[method-assign]
    producer: FakeProducer = service.producer  # type: ignore[assignment]
    producer.down = True
    run, started = await service.trigger(CAPACITY.id, "coordinator-a", "drill")
    assert started and run.state is RunState.AWAITING_APPROVAL
    assert run.run_id in service._answered  # held out of checkpoints until announced
    await service.approve(run.run_id, "coordinator-b", "token-b")
    assert run.state is RunState.SOLVING and scheduled == [run.run_id]  # not waiting
    assert not any(m["topic"] == COMMANDS.name for m in producer.sent)
    producer.down = False
    service._retry_effects_at = 0.0
    await service._flush_answers()
    commands = [m["type"] for m in producer.sent if m["topic"] == COMMANDS.name]
    assert commands == ["TriggerProtocol", "ApproveRun"]  # in the order they happened
    assert run.run_id not in service._answered and run.run_id in service._dirty


async def test_an_unknown_path_or_method_is_refused_in_json(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    missing = await client.get("/v1/no-such-thing", headers=_auth(setup))
    assert missing.status == 404
    assert await missing.json() == {
        "status": 404,
        "reason": "no_such_endpoint",
        "message": "no endpoint /v1/no-such-thing",
    }
    wrong = await client.delete("/v1/protocols", headers=_auth(setup))
    assert wrong.status == 405
    assert "GET" in wrong.headers["Allow"]
    body = await wrong.json()
    assert body["reason"] == "method_not_allowed"
    assert body["message"].startswith("DELETE is not allowed on /v1/protocols (allowed: ")
