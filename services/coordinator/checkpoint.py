"""Run state on disk, so that a restarted coordinator carries on with its runs.

One JSON file per run (``<dir>/<run_id>.json``, written atomically) holds everything the
pure :class:`~services.coordinator.core.Coordinator` keeps about it: protocol, state,
approvals, revision, orders and their states, what earlier revisions committed or excluded,
and the decision summary. ``consumed.json`` holds the next offset of every partition of
``verbund.partner.events`` whose answers are reflected in the files, so a restarted
coordinator resumes reading answers there (answers sent while it was down are applied;
answers applied twice are ignored by the core).

The service writes the files of the runs that changed, after the change was published: a
crash in between leaves the previous state on disk, and the core then repeats the step (a
re-solve publishes a new revision; its orders replace the older ones). A new decision is the
exception: its run is written *before* its messages go out, marked ``publish_pending``, so a
restarted coordinator publishes them again (same order ids) instead of leaving partners with
orders nobody tracks; the mark is cleared in the write after the publication.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from protocols.decisions import CapacityAssignment, Decision, Order, PurchaseShare, TransferOrder
from schemas.coordination import OrderState, RunState
from schemas.protocol import Protocol
from services.common.logging import get_logger
from services.coordinator.core import Coordinator, Run, TrackedOrder
from services.coordinator.snapshot import Adjustments

log = get_logger("coordinator.checkpoint")

FORMAT = 1
ORDER_TYPES: dict[str, type[Order]] = {
    "transfer": TransferOrder,
    "capacity": CapacityAssignment,
    "purchase": PurchaseShare,
}
# the order lists live in the tracked orders; the decision keeps its summary only
_DECISION_ORDERS = {"transfers", "capacity_assignments", "purchase_shares", "fulfilment"}


# -- pure: a run <-> a JSON document ------------------------------------------------------------
def run_document(run: Run) -> dict[str, Any]:
    adjust = run.adjustments
    return {
        "format": FORMAT,
        "run_id": run.run_id,
        "protocol": run.protocol.model_dump(mode="json"),
        "protocol_hash": run.protocol_hash,
        "scope_key": run.scope_key,
        "trigger": run.trigger,
        "triggered_at": run.triggered_at,
        "state": run.state.value,
        "approvals": run.approvals,
        "revision": run.revision,
        "detail": run.detail,
        "snapshot_hash": run.snapshot_hash,
        "data_partners": run.data_partners,
        "recipients": run.recipients,
        "decision_hash": run.decision_hash,
        "solve_seconds": run.solve_seconds,
        "decided_at": run.decided_at,
        "publish_pending": run.publish_pending,
        "decision": (
            run.decision.model_dump(mode="json", exclude=_DECISION_ORDERS)
            if run.decision is not None
            else None
        ),
        "adjustments": {
            "excluded_donors": sorted(adjust.excluded_donors),
            "excluded_offers": sorted(adjust.excluded_offers),
            "given": [[*key, q] for key, q in sorted(adjust.given.items())],
            "received": adjust.received,
            "hours_given": adjust.hours_given,
            "hours_received": adjust.hours_received,
            "excluded_demands": sorted(adjust.excluded_demands),
        },
        "orders": [
            {
                "order_id": o.order_id,
                "revision": o.revision,
                "kind": o.kind,
                "responder": o.responder,
                "informed": list(o.informed),
                "respond_by": o.respond_by,
                "state": o.state.value,
                "source": o.source.model_dump(mode="json") if o.source is not None else None,
            }
            for o in run.orders.values()
        ],
    }


def checkpoint_bytes(run: Run) -> bytes:
    """A run's checkpoint file content (made where the run is changed: the event loop)."""
    return orjson.dumps(run_document(run))


def run_from_document(doc: dict[str, Any]) -> Run:
    """Rebuild a run; raises ``ValueError`` (or a pydantic error) on a malformed document."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"unknown checkpoint format {doc.get('format')!r}")
    raw = doc["adjustments"]
    adjust = Adjustments(
        excluded_donors={(p, s, m) for p, s, m in raw["excluded_donors"]},
        excluded_offers=set(raw["excluded_offers"]),
        given={(p, s, m): float(q) for p, s, m, q in raw["given"]},
        received={k: float(v) for k, v in raw["received"].items()},
        hours_given={k: float(v) for k, v in raw["hours_given"].items()},
        hours_received={k: float(v) for k, v in raw["hours_received"].items()},
        excluded_demands={(p, m) for p, m in raw["excluded_demands"]},
    )
    run = Run(
        run_id=doc["run_id"],
        protocol=Protocol.model_validate(doc["protocol"], strict=False),
        protocol_hash=doc["protocol_hash"],
        scope_key=doc["scope_key"],
        trigger=doc["trigger"],
        triggered_at=float(doc["triggered_at"]),
        state=RunState(doc["state"]),
        approvals=dict(doc["approvals"]),
        revision=int(doc["revision"]),
        adjustments=adjust,
        decision=Decision.model_validate(doc["decision"]) if doc["decision"] else None,
        detail=doc["detail"],
        snapshot_hash=doc["snapshot_hash"],
        data_partners=list(doc["data_partners"]),
        recipients=list(doc["recipients"]),
        # files written before these fields existed: an already published decision
        decision_hash=str(doc.get("decision_hash", "")),
        solve_seconds=float(doc.get("solve_seconds", 0.0)),
        decided_at=float(doc.get("decided_at", 0.0)),
        publish_pending=bool(doc.get("publish_pending", False)),
    )
    for raw_order in doc["orders"]:
        source = raw_order["source"]
        order = ORDER_TYPES[raw_order["kind"]].model_validate(source) if source else None
        payload = {k: v for k, v in (source or {}).items() if k != "order_id"}
        run.orders[raw_order["order_id"]] = TrackedOrder(
            order_id=raw_order["order_id"],
            revision=int(raw_order["revision"]),
            kind=raw_order["kind"],
            responder=raw_order["responder"],
            informed=tuple(raw_order["informed"]),
            payload=payload,
            respond_by=float(raw_order["respond_by"]),
            state=OrderState(raw_order["state"]),
            source=order,
        )
    return run


def restore_into(core: Coordinator, runs: list[Run]) -> None:
    """Put recovered runs back into the core with their indexes (active scope, orders)."""
    for run in runs:
        core.runs[run.run_id] = run
        for order_id in run.orders:
            core.order_index[order_id] = run.run_id
        if run.state.active:
            core.active_scopes[run.scope_key] = run.run_id


# -- I/O ------------------------------------------------------------------------------------------
class Checkpoints:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, documents: dict[str, bytes], consumed: dict[int, int]) -> None:
        """Write run documents (:func:`checkpoint_bytes`, by run id), then the consumed
        offsets (the answers before them are reflected in the files)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for run_id, document in documents.items():
            _write(self.directory / f"{run_id}.json", document)
        if consumed:
            offsets = {str(p): o for p, o in sorted(consumed.items())}
            _write(self.directory / "consumed.json", orjson.dumps(offsets))

    def forget(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            (self.directory / f"{run_id}.json").unlink(missing_ok=True)

    def load(self) -> tuple[list[Run], dict[int, int] | None]:
        """Every readable run and the consumed offsets (``None``: the offsets file is
        unreadable, so answers must be read again from the beginning). An unreadable run file
        is logged, moved aside (``*.unreadable``) and skipped; the other runs recover."""
        if not self.directory.is_dir():
            return [], {}
        runs = []
        for path in sorted(self.directory.glob("run-*.json")):
            try:
                runs.append(run_from_document(orjson.loads(path.read_bytes())))
            except Exception as exc:  # one bad file must not stop recovery
                log.error("checkpoint_unreadable", file=str(path), error=repr(exc)[:300])
                path.replace(path.with_suffix(".unreadable"))
        consumed: dict[int, int] | None = {}
        offsets = self.directory / "consumed.json"
        if offsets.exists():
            try:
                consumed = {int(p): int(o) for p, o in orjson.loads(offsets.read_bytes()).items()}
            except (ValueError, TypeError, AttributeError) as exc:
                log.error("checkpoint_unreadable", file=str(offsets), error=repr(exc)[:300])
                consumed = None
        return runs, consumed


def _write(path: Path, content: bytes) -> None:
    """Atomically: a temporary file of its own in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
