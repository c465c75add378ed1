"""Run state survives a coordinator restart: checkpoint documents round-trip, and a core
rebuilt from them carries on (answers, re-plans, the one-run-per-scope rule)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from schemas.coordination import OrderState, RunState
from schemas.protocol import ApprovalPolicy
from services.coordinator.checkpoint import (
    Checkpoints,
    checkpoint_bytes,
    restore_into,
    run_document,
    run_from_document,
)
from services.coordinator.core import Coordinator, recover, take_back_undecided
from tests.protocols.helpers import protocol
from tests.unit.coordinator.test_core import NOW, solved

PROTO = protocol()


def _published() -> tuple[Coordinator, str]:
    core = Coordinator({PROTO.id: PROTO})
    run, _, _ = core.trigger(PROTO.id, "manual", NOW)
    solved(core, run.run_id)
    return core, run.run_id


def test_document_round_trip_keeps_everything_the_core_uses() -> None:
    core, run_id = _published()
    run = core.runs[run_id]
    [order] = run.current_orders()
    core.acknowledge(order.order_id, order.responder, False, "need it", NOW)  # decline
    solved(core, run_id)  # revision 2
    back = run_from_document(run_document(run))
    assert run_document(back) == run_document(run)
    assert back.adjustments == run.adjustments and back.adjustments.excluded_donors
    assert back.state is RunState.PUBLISHED and back.revision == 2
    assert {o.order_id: o.state for o in back.orders.values()} == {
        o.order_id: o.state for o in run.orders.values()
    }
    assert [o.payload for o in back.current_orders()] == [o.payload for o in run.current_orders()]
    assert back.decision is not None and back.decision.status == run.decision.status  # type: ignore[union-attr]


def test_a_pending_publication_round_trips_and_older_files_count_as_published() -> None:
    core = Coordinator({PROTO.id: PROTO})
    run, _, _ = core.trigger(PROTO.id, "manual", NOW)
    first = solved(core, run.run_id, published=False)
    back = run_from_document(run_document(run))
    assert back.publish_pending and back.decision_hash == run.decision_hash != ""
    assert (back.solve_seconds, back.decided_at) == (run.solve_seconds, run.decided_at)
    # the restored run announces the very same decision
    again = Coordinator({PROTO.id: PROTO})
    restore_into(again, [back])
    assert [m.value for m in again.decision_messages(back, NOW)] == [m.value for m in first]
    old = run_document(run)
    for name in ("decision_hash", "solve_seconds", "decided_at", "publish_pending"):
        del old[name]
    assert not run_from_document(old).publish_pending


def test_a_decision_without_its_record_is_taken_back() -> None:
    core = Coordinator({PROTO.id: PROTO})
    run, _, _ = core.trigger(PROTO.id, "manual", NOW)
    solved(core, run.run_id, published=False)
    back = run_from_document(run_document(run))
    take_back_undecided(back)
    assert back.state is RunState.SOLVING and not back.publish_pending
    assert back.current_orders() == [] and back.revision == 1
    restored = Coordinator({PROTO.id: PROTO})
    restore_into(restored, [back])
    assert restored.active_scopes == {back.scope_key: back.run_id}
    assert restored.order_index == {}


def test_recovery_settles_pending_and_interrupted_runs() -> None:
    """What a restart does with each run before going on (records: (run id, revision))."""
    # a pending decision with its record: published again as it is
    core = Coordinator({PROTO.id: PROTO})
    pending, _, _ = core.trigger(PROTO.id, "manual", NOW)
    solved(core, pending.run_id, published=False)
    # the same, its record missing: taken back
    core2 = Coordinator({PROTO.id: PROTO})
    undecided, _, _ = core2.trigger(PROTO.id, "manual", NOW)
    solved(core2, undecided.run_id, published=False)
    # revision 1 refused by the broker, then declined by a partner that got its order: the
    # run is solving again, and its revision 2 was solved and recorded before the stop
    core3 = Coordinator({PROTO.id: PROTO})
    replanned, _, _ = core3.trigger(PROTO.id, "manual", NOW)
    solved(core3, replanned.run_id, published=False)
    [order] = replanned.current_orders()
    _, replan = core3.acknowledge(order.order_id, order.responder, False, "no", NOW + 1)
    assert replan and replanned.state is RunState.SOLVING and replanned.publish_pending
    # the same, stopped before revision 2 was recorded
    runs = [
        run_from_document(run_document(r)) for r in (pending, undecided, replanned, replanned)
    ]
    records = {(pending.run_id, 1), (replanned.run_id, 1), (replanned.run_id, 2)}
    recover(runs[:3], lambda run_id, revision: (run_id, revision) in records)
    recover(runs[3:], lambda run_id, revision: (run_id, revision) == (replanned.run_id, 1))
    back_pending, back_undecided, back_replanned, back_unrecorded = runs
    assert back_pending.publish_pending and back_pending.state is RunState.PUBLISHED
    assert not back_undecided.publish_pending and back_undecided.state is RunState.SOLVING
    assert back_undecided.current_orders() == []
    # solved again as revision 3; revision 1 is not announced again (as revision 2)
    assert back_replanned.revision == 2 and not back_replanned.publish_pending
    assert back_replanned.state is RunState.SOLVING
    assert back_unrecorded.revision == 1 and not back_unrecorded.publish_pending
    assert back_unrecorded.state is RunState.SOLVING


def test_restored_core_accepts_answers_and_keeps_one_run_per_scope(tmp_path: Path) -> None:
    core, run_id = _published()
    store = Checkpoints(tmp_path)
    store.save({r: checkpoint_bytes(run) for r, run in core.runs.items()}, {0: 17, 3: 4})
    (tmp_path / "run-garbage.json").write_text("{not json")  # moved aside, the rest recovers
    runs, consumed = store.load()
    assert [r.run_id for r in runs] == [run_id] and consumed == {0: 17, 3: 4}
    assert (tmp_path / "run-garbage.unreadable").exists()

    fresh = Coordinator({PROTO.id: PROTO})
    restore_into(fresh, runs)
    again, started, _ = fresh.trigger(PROTO.id, "rule", NOW + 5)
    assert not started and again.run_id == run_id  # the scope is still taken
    [order] = fresh.runs[run_id].current_orders()
    messages, replan = fresh.acknowledge(order.order_id, order.responder, True, None, NOW + 6)
    assert messages and not replan
    assert fresh.runs[run_id].state is RunState.COMPLETED
    assert fresh.runs[run_id].orders[order.order_id].state is OrderState.ACCEPTED
    # an answer applied twice (re-read after a restart) changes nothing
    assert fresh.acknowledge(order.order_id, order.responder, True, None, NOW + 7) == ([], False)
    store.forget([run_id])
    assert store.load()[0] == []


def test_a_run_awaiting_approval_keeps_its_approvals() -> None:
    four_eyes = protocol().model_copy(update={"approval": ApprovalPolicy.TWO_COORDINATORS})
    core = Coordinator({four_eyes.id: four_eyes})
    run, _, _ = core.trigger(four_eyes.id, "manual", NOW)
    core.approve(run.run_id, "coord-anna", "tok-a", NOW)
    back = run_from_document(run_document(run))
    fresh = Coordinator({four_eyes.id: four_eyes})
    restore_into(fresh, [back])
    assert fresh.runs[run.run_id].approvals == {"coord-anna": "tok-a"}
    fresh.approve(run.run_id, "coord-ben", "tok-b", NOW)
    assert fresh.runs[run.run_id].state is RunState.SOLVING


def test_commitments_of_every_kind_round_trip() -> None:
    """What accepted capacity assignments and settled or declined purchase demands left in
    a run's adjustments survives the restart (a re-plan after it must not reuse them)."""
    core, run_id = _published()
    run = core.runs[run_id]
    adjust = run.adjustments
    adjust.hours_given["werk.o1"] = 10.0
    adjust.hours_received["klinik.steri"] = 10.0
    adjust.excluded_offers.add("werk.o2")
    adjust.excluded_demands.update({("klinik-b", "MASK-FFP2"), ("klinik-c", "GLOVES")})
    back = run_from_document(run_document(run))
    assert back.adjustments == adjust


def test_unreadable_offsets_mean_read_answers_again(tmp_path: Path) -> None:
    store = Checkpoints(tmp_path)
    (tmp_path / "consumed.json").write_text("[1, 2")
    assert store.load() == ([], None)


def test_overlapping_saves_leave_readable_files(tmp_path: Path) -> None:
    """Saves from several threads at once (each with its own temporary file)."""
    core, run_id = _published()
    document = {run_id: checkpoint_bytes(core.runs[run_id])}
    store = Checkpoints(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.save(document, {0: i, 1: i}), range(400)))
    runs, consumed = store.load()
    assert [r.run_id for r in runs] == [run_id]
    assert consumed is not None and consumed[0] == consumed[1]
    assert not list(tmp_path.glob("*.tmp"))
