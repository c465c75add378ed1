"""Four-eyes approval: one person twice, two tokens of one person, two people; in the pure
coordinator core and through the coordinator's HTTP API (Kafka parts not started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from protocols.loader import load_library
from schemas.coordination import RunState
from services.common.topics import COMMANDS
from services.coordinator.core import CommandRefused, Coordinator, FourEyesRefused
from tests.unit.access_apps import FOUR_EYES_PROTOCOL, Setup, build

T0 = 1_795_334_400.0  # 2026-11-22


@pytest.fixture(scope="module")
def coordinator() -> Coordinator:
    return Coordinator(load_library(None).protocols)


def _run(core: Coordinator) -> str:
    core.active_scopes.clear()
    run, started, _ = core.trigger(FOUR_EYES_PROTOCOL, "test", T0)
    assert started and run.state is RunState.AWAITING_APPROVAL and run.approvals_needed == 2
    return run.run_id


def test_core_one_person_cannot_approve_twice(coordinator: Coordinator) -> None:
    run_id = _run(coordinator)
    coordinator.approve(run_id, "coord-anna", "tok-anna-1", T0 + 1)
    with pytest.raises(FourEyesRefused, match="second person"):
        coordinator.approve(run_id, "coord-anna", "tok-anna-1", T0 + 2)
    assert coordinator.runs[run_id].state is RunState.AWAITING_APPROVAL


def test_core_two_tokens_of_one_person_are_one_approval(coordinator: Coordinator) -> None:
    run_id = _run(coordinator)
    coordinator.approve(run_id, "coord-anna", "tok-anna-1", T0 + 1)
    with pytest.raises(FourEyesRefused):
        coordinator.approve(run_id, "coord-anna", "tok-anna-2", T0 + 2)
    assert coordinator.runs[run_id].approvals == {"coord-anna": "tok-anna-1"}


def test_core_one_token_under_two_names_is_one_approval(coordinator: Coordinator) -> None:
    run_id = _run(coordinator)
    coordinator.approve(run_id, "coord-anna", "tok-shared", T0 + 1)
    with pytest.raises(FourEyesRefused, match="token"):
        coordinator.approve(run_id, "coord-ben", "tok-shared", T0 + 2)
    assert coordinator.runs[run_id].state is RunState.AWAITING_APPROVAL


def test_core_two_people_approve(coordinator: Coordinator) -> None:
    run_id = _run(coordinator)
    first = coordinator.approve(run_id, "coord-anna", "tok-anna-1", T0 + 1)
    assert coordinator.runs[run_id].state is RunState.AWAITING_APPROVAL
    assert b"1 more needed" in first[0].value
    second = coordinator.approve(run_id, "coord-ben", "tok-ben-1", T0 + 2)
    run = coordinator.runs[run_id]
    assert run.state is RunState.SOLVING and sorted(run.approvals) == ["coord-anna", "coord-ben"]
    assert orjson.loads(second[0].value)["approvals"] == ["coord-anna", "coord-ben"]
    with pytest.raises(CommandRefused) as late:  # a third approval: the gate is closed
        coordinator.approve(run_id, "coord-carl", "tok-carl", T0 + 3)
    assert not isinstance(late.value, FourEyesRefused) and late.value.status == 409


# -- through the HTTP API ------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    setup = build(tmp_path)
    async with TestClient(TestServer(setup.apps["coordinator"])) as client:
        yield setup, client


async def _approve(client: Any, token: str, run_id: str) -> tuple[int, dict[str, Any]]:
    answer = await client.post(
        f"/v1/runs/{run_id}/approve", headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status, await answer.json()


def _commands(setup: Setup) -> list[dict[str, Any]]:
    return [orjson.loads(v) for topic, _, v in setup.producer.sent if topic == COMMANDS.name]


async def test_http_one_person_twice_then_two_tokens_then_a_second_person(api: Any) -> None:
    setup, client = api
    tokens = setup.tokens
    created = await client.post(
        f"/v1/protocols/{FOUR_EYES_PROTOCOL}/runs",
        headers={"Authorization": f"Bearer {tokens['coordinator']}"},
        json={"reason": "drill"},
    )
    assert created.status == 202
    run_id = (await created.json())["run_id"]

    status, body = await _approve(client, tokens["coordinator"], run_id)  # coord-anna, token 1
    assert status == 200 and body["approvals"] == ["coord-anna"] and body["state"] == (
        "awaiting_approval"
    )
    status, body = await _approve(client, tokens["coordinator"], run_id)  # the same token again
    assert status == 409 and "second person" in body["message"]
    status, body = await _approve(client, tokens["coord-anna-2"], run_id)  # her second token
    assert status == 409 and "second person" in body["message"]
    assert setup.coordinator.core.runs[run_id].state is RunState.AWAITING_APPROVAL

    refusals = setup.refusals.take()  # both four-eyes refusals are audited, with the principal
    assert [(e.principal, e.role, e.action) for e in refusals] == [
        ("coord-anna", "coordinator", "approve_run")
    ] * 2
    assert all("four eyes" in e.reason for e in refusals)

    status, body = await _approve(client, tokens["coord-ben"], run_id)  # a second person
    assert status == 200 and body["state"] == "solving"
    assert body["approvals"] == ["coord-anna", "coord-ben"]

    approvals = [c for c in _commands(setup) if c["type"] == "ApproveRun"]
    assert [(c["principal"], c["run_id"]) for c in approvals] == [
        ("coord-anna", run_id),
        ("coord-ben", run_id),
    ]
    assert approvals[0]["token_id"] != approvals[1]["token_id"]
    assert all(len(c["token_id"]) == 12 and "vbd_" not in c["token_id"] for c in approvals)


async def test_http_other_roles_cannot_approve_and_rejection_is_recorded(api: Any) -> None:
    setup, client = api
    run_id = setup.new_run()
    for role in ("operator", "auditor", "partner"):
        status, _ = await _approve(client, setup.tokens[role], run_id)
        assert status == 403, role
    assert setup.coordinator.core.runs[run_id].approvals == {}
    answer = await client.post(
        f"/v1/runs/{run_id}/reject",
        headers={"Authorization": f"Bearer {setup.tokens['coord-ben']}"},
        json={"reason": "not needed"},
    )
    assert answer.status == 200 and (await answer.json())["state"] == "rejected"
    [reject] = [c for c in _commands(setup) if c["type"] == "RejectRun"]
    assert reject["principal"] == "coord-ben" and reject["reason"] == "not needed"
