"""The coordinator's pure decision logic: runs, orders, answers, deadlines and re-plans."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from protocols.run import solve
from schemas.coordination import OrderState, RunState
from schemas.protocol import Protocol
from services.common.topics import DECISIONS, PARTNER_ORDERS, RUNS
from services.coordinator.core import MAX_REVISIONS, CommandRefused, Coordinator, Publish
from services.coordinator.snapshot import Adjustments
from tests.protocols.helpers import protocol, scenario

NOW = 1_800_000_000.0


def two_donors(adjust: Adjustments | None = None) -> object:
    """Hospital hosp needs 100; donor near (closer) and far each can give 100."""
    donors = [("near", 300.0, 100.0, 0.5, 10.0), ("far", 300.0, 100.0, 0.5, 14.0)]
    if adjust is not None:
        donors = [
            (pid, min(oh, ss) if (pid, "s", "MAT") in adjust.excluded_donors else oh, ss, sh, lon)
            for pid, oh, ss, sh, lon in donors
        ]
    return scenario(donors, [("hosp", 1, 100.0, 10.1)])


@pytest.fixture
def proto() -> Protocol:
    return protocol()


@pytest.fixture
def core(proto: Protocol) -> Coordinator:
    return Coordinator({proto.id: proto})


def decode(messages: list[Publish], topic: str) -> list[dict]:
    return [orjson.loads(m.value) for m in messages if m.topic == topic]


def solved(
    core: Coordinator, run_id: str, now: float = NOW, published: bool = True
) -> list[Publish]:
    """Solve and take the decision; ``published``: its messages went out (as the service
    reports after publishing them)."""
    run = core.runs[run_id]
    result = solve(run.protocol, two_donors(run.adjustments), run_id=run_id)  # type: ignore[arg-type]
    messages = core.solved(run_id, result, 0.01, now)
    if published:
        core.published(run_id, core.runs[run_id].revision)
    return messages


def test_one_run_per_scope_until_it_ends(core: Coordinator, proto: Protocol) -> None:
    run, started, messages = core.trigger(proto.id, "manual", NOW)
    assert started and run.state is RunState.SOLVING
    assert decode(messages, RUNS.name)[0]["state"] == "solving"
    again, started_again, nothing = core.trigger(proto.id, "rule", NOW + 1)
    assert again is run and not started_again and nothing == []
    with pytest.raises(CommandRefused) as refused:
        core.trigger("no-such-protocol", "manual", NOW)
    assert refused.value.status == 404


def test_decision_goes_first_and_each_order_only_to_its_parties(
    core: Coordinator, proto: Protocol
) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    messages = solved(core, run.run_id)
    assert messages[0].topic == DECISIONS.name
    [decision] = decode(messages, DECISIONS.name)
    assert decision["orders"] == 1 and decision["partners"] == ["hosp", "near"]
    orders = decode(messages, PARTNER_ORDERS.name)
    assert {(o["recipient"], o["must_answer"]) for o in orders} == {("near", True), ("hosp", False)}
    assert all(o["order"]["from_partner"] == "near" for o in orders)
    keys = sorted(m.key for m in messages if m.topic == PARTNER_ORDERS.name)
    assert keys == [b"hosp", b"near"]  # keyed by recipient: each partner reads only its own
    assert run.state is RunState.PUBLISHED


def test_decline_replans_without_the_donor(core: Coordinator, proto: Protocol) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    solved(core, run.run_id)
    [order] = run.current_orders()
    # only the party that must answer can answer
    assert core.acknowledge(order.order_id, "hosp", False, "no", NOW) == ([], False)
    messages, replan = core.acknowledge(order.order_id, "near", False, "need it", NOW)
    assert replan and run.state is RunState.SOLVING
    assert {m["state"] for m in decode(messages, PARTNER_ORDERS.name)} == {"declined"}
    assert ("near", "s", "MAT") in run.adjustments.excluded_donors
    second = solved(core, run.run_id)
    orders = decode(second, PARTNER_ORDERS.name)
    assert {o["order"]["from_partner"] for o in orders} == {"far"}
    assert run.revision == 2 and run.state is RunState.PUBLISHED


def test_a_decline_reason_reaches_only_the_decliner_and_the_run_names_nobody(
    core: Coordinator, proto: Protocol
) -> None:
    """Operators see run details; the other party of the order sees who declined, not why
    (the free text may describe the decliner's own stock)."""
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    solved(core, run.run_id)
    [order] = run.current_orders()
    reason = "we keep 180 on hand for our own ICU"
    messages, _ = core.acknowledge(order.order_id, "near", False, reason, NOW)
    updates = {m["recipient"]: m["reason"] for m in decode(messages, PARTNER_ORDERS.name)}
    assert updates == {"near": f"declined by near: {reason}", "hosp": "declined by near"}
    [detail] = [m["detail"] for m in decode(messages, RUNS.name)]
    assert detail == "re-planning without 1 order(s): declined"
    # an acceptance's note stays with the partner that wrote it too
    solved(core, run.run_id)
    [order] = run.current_orders()
    messages, _ = core.acknowledge(order.order_id, order.responder, True, "on hand: 500", NOW)
    updates = {m["recipient"]: m["reason"] for m in decode(messages, PARTNER_ORDERS.name)}
    assert updates[order.responder] == "on hand: 500"
    assert all(r == "" for p, r in updates.items() if p != order.responder)


def test_expired_orders_replan_and_other_pending_orders_are_cancelled(
    core: Coordinator, proto: Protocol
) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    solved(core, run.run_id)
    deadline = NOW + proto.response_hours * 3600
    assert core.tick(deadline - 1) == ([], [])
    messages, replan = core.tick(deadline + 1)
    assert replan == [run.run_id]
    [order] = run.orders.values()
    assert order.state is OrderState.EXPIRED
    assert "deadline" in decode(messages, PARTNER_ORDERS.name)[0]["reason"]


def test_a_decision_not_known_to_be_out_is_published_again_with_the_same_orders(
    core: Coordinator, proto: Protocol
) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    first = solved(core, run.run_id, published=False)
    assert run.publish_pending
    deadline = NOW + proto.response_hours * 3600
    # its orders may never have reached the partners: they do not expire meanwhile
    assert core.tick(deadline + 1) == ([], [])
    later = NOW + 600
    again = core.republish(run.run_id, later)
    assert [m.topic for m in again] == [m.topic for m in first]
    [summary] = decode(again, DECISIONS.name)
    assert summary == {**decode(first, DECISIONS.name)[0], "at": summary["at"]}
    before, after = decode(first, PARTNER_ORDERS.name), decode(again, PARTNER_ORDERS.name)
    assert [(o["order_id"], o["recipient"], o["order"]) for o in after] == [
        (o["order_id"], o["recipient"], o["order"]) for o in before
    ]
    # partners may see the orders only now: they get the full time to answer from now on
    assert {o["respond_by"] for o in after} == {
        datetime.fromtimestamp(later + proto.response_hours * 3600, UTC).isoformat()
    }
    core.published(run.run_id, run.revision)
    assert not run.publish_pending
    assert core.tick(later + proto.response_hours * 3600 - 1) == ([], [])
    _, replan = core.tick(later + proto.response_hours * 3600 + 1)
    assert replan == [run.run_id]


def test_all_accepted_completes_and_frees_the_scope(core: Coordinator, proto: Protocol) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    solved(core, run.run_id)
    [order] = run.current_orders()
    messages, replan = core.acknowledge(order.order_id, "near", True, None, NOW)
    assert not replan and run.state is RunState.COMPLETED
    assert decode(messages, RUNS.name)[-1]["state"] == "completed"
    assert run.adjustments.given[("near", "s", "MAT")] == pytest.approx(100)
    # a duplicate answer changes nothing; a new trigger starts a new run
    assert core.acknowledge(order.order_id, "near", False, None, NOW) == ([], False)
    second, started, _ = core.trigger(proto.id, "manual", NOW)
    assert started and second.run_id != run.run_id


def test_gives_up_after_the_revision_limit(core: Coordinator, proto: Protocol) -> None:
    run, _, _ = core.trigger(proto.id, "manual", NOW)
    for _ in range(MAX_REVISIONS):
        solved(core, run.run_id)
        [order] = run.current_orders()
        run.adjustments.excluded_donors.clear()  # keep producing an order to decline
        core.acknowledge(order.order_id, order.responder, False, None, NOW)
    assert run.state is RunState.FAILED and "revisions" in run.detail
    assert run.scope_key not in core.active_scopes


def test_an_unusable_decision_fails_the_run(core: Coordinator, proto: Protocol) -> None:
    strict = protocol(min_fill=[{"tier": 1, "fraction": 1.0}])
    core.protocols[strict.id] = strict
    run, _, _ = core.trigger(strict.id, "manual", NOW)
    impossible = scenario([("donor", 110.0, 100.0, 0.5, 10.0)], [("hosp", 1, 100.0, 10.1)])
    result = solve(strict, impossible, run_id=run.run_id)
    messages = core.solved(run.run_id, result, 0.01, NOW)
    [decision] = decode(messages, DECISIONS.name)
    assert decision["status"] == "infeasible" and decision["orders"] == 0
    assert run.state is RunState.FAILED and run.scope_key not in core.active_scopes
    assert decode(messages, PARTNER_ORDERS.name) == []
