"""Retention of decisions: run records on disk and finished runs in the coordinator."""

from __future__ import annotations

import os
from pathlib import Path

from schemas.protocol import ApprovalPolicy
from services.coordinator.core import Coordinator
from services.coordinator.store import RunStore
from tests.protocols.helpers import protocol

DAY = 86_400.0
NOW = 1_900_000_000.0


def _record(store: RunStore, run_id: str, age_days: float) -> None:
    path = store.path(run_id, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))


def test_run_store_expires_old_runs_only(tmp_path: Path) -> None:
    store = RunStore(tmp_path, retention_days=30)
    _record(store, "run-00000000000a", 31)
    _record(store, "run-00000000000b", 2)
    assert store.expire(NOW) == ["run-00000000000a"]
    assert not (tmp_path / "run-00000000000a").exists()
    assert (tmp_path / "run-00000000000b").exists()
    assert RunStore(tmp_path).expire(NOW + 1000 * DAY) == []  # no retention set: keep all


def test_coordinator_forgets_finished_runs_only() -> None:
    p = protocol().model_copy(
        update={"id": "keep-test", "approval": ApprovalPolicy.ONE_COORDINATOR}
    )
    core = Coordinator({p.id: p})
    old, _, _ = core.trigger(p.id, "manual", NOW - 40 * DAY)
    core.reject(old.run_id, "coord-a", "no", NOW - 40 * DAY)
    active, _, _ = core.trigger(p.id, "manual", NOW - 50 * DAY)  # awaiting approval: kept
    assert core.forget_finished(NOW - 30 * DAY) == [old.run_id]
    assert set(core.runs) == {active.run_id}
