"""The coordinator's decision logic (pure): runs, approvals, decisions, orders, re-plans.

Every method takes the current time and returns the messages to publish
(:class:`Publish`) and whether a solve is needed; the service adapter does the I/O
and runs the solver off the event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from protocols.decisions import CapacityAssignment, Decision, Order, PurchaseShare, TransferOrder
from protocols.run import RunResult
from protocols.status import SolveStatus
from schemas.coordination import (
    DecisionPublished,
    OrderState,
    OrderUpdated,
    RunState,
    RunUpdated,
)
from schemas.protocol import Protocol
from services.common.topics import DECISIONS, PARTNER_ORDERS, RUNS
from services.coordinator.snapshot import Adjustments

MAX_REVISIONS = 6


class CommandRefused(Exception):
    """A command that cannot be carried out; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FourEyesRefused(CommandRefused):
    """An approval refused by the four-eyes rule (same person, or a token already used)."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


@dataclass(frozen=True)
class Publish:
    topic: str
    key: bytes
    value: bytes


@dataclass
class TrackedOrder:
    order_id: str
    revision: int
    kind: str
    responder: str
    informed: tuple[str, ...]
    payload: dict[str, Any]
    respond_by: float
    state: OrderState = OrderState.PENDING
    source: Order | None = None


@dataclass
class Run:
    run_id: str
    protocol: Protocol
    protocol_hash: str
    scope_key: str
    trigger: str
    triggered_at: float
    state: RunState
    approvals: dict[str, str] = field(default_factory=dict)  # principal -> token id
    revision: int = 0
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    adjustments: Adjustments = field(default_factory=Adjustments)
    decision: Decision | None = None
    detail: str = ""
    # audit: the data the latest revision used and who saw its result
    snapshot_hash: str = ""
    data_partners: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    # the latest revision's decision, for publishing it (again)
    decision_hash: str = ""
    solve_seconds: float = 0.0
    decided_at: float = 0.0
    # decided, but its messages are not known to be out: published again (retry, restart)
    publish_pending: bool = False

    @property
    def approvals_needed(self) -> int:
        return self.protocol.approval.approvals_needed

    def current_orders(self) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if o.revision == self.revision]

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "protocol_id": self.protocol.id,
            "protocol_version": self.protocol.version,
            "state": self.state.value,
            "revision": self.revision,
            "trigger": self.trigger,
            "approvals": sorted(self.approvals),
            "approvals_needed": self.approvals_needed,
            "detail": self.detail,
            "orders": {s.value: n for s, n in _count_states(self.current_orders()).items()},
        }


def scope_key(protocol: Protocol) -> str:
    scope = protocol.scope
    parts = [
        protocol.kind,
        ",".join(sorted(scope.materials)) or "*",
        ",".join(sorted(scope.sectors)) or "*",
        ",".join(sorted(scope.regions)) or "*",
    ]
    return "|".join(parts)


def protocol_hash(protocol: Protocol) -> str:
    return hashlib.sha256(protocol.to_json_bytes()).hexdigest()


class Coordinator:
    def __init__(self, protocols: dict[str, Protocol]) -> None:
        self.protocols = protocols
        self.runs: dict[str, Run] = {}
        self.active_scopes: dict[str, str] = {}  # scope key -> run id
        self.order_index: dict[str, str] = {}  # order id -> run id

    # -- commands -------------------------------------------------------------------------
    def trigger(
        self, protocol_id: str, trigger: str, now: float
    ) -> tuple[Run, bool, list[Publish]]:
        """Start a run; returns (run, started, messages). An active run of the same scope is
        returned instead of starting a second one."""
        protocol = self.protocols.get(protocol_id)
        if protocol is None:
            raise CommandRefused(404, f"no protocol {protocol_id!r}")
        key = scope_key(protocol)
        active = self.active_scopes.get(key)
        if active is not None:
            return self.runs[active], False, []
        state = (
            RunState.AWAITING_APPROVAL if protocol.approval.approvals_needed else RunState.SOLVING
        )
        run = Run(
            run_id=f"run-{secrets.token_hex(6)}",
            protocol=protocol,
            protocol_hash=protocol_hash(protocol),
            scope_key=key,
            trigger=trigger,
            triggered_at=now,
            state=state,
        )
        self.runs[run.run_id] = run
        self.active_scopes[key] = run.run_id
        detail = "waiting for approval" if state is RunState.AWAITING_APPROVAL else "solving"
        return run, True, [self._run_updated(run, now, detail)]

    def approve(self, run_id: str, principal: str, token_id: str, now: float) -> list[Publish]:
        """Record one approval. Four eyes: each approval must come from another principal
        *and* another token (so neither one person with several tokens nor one token shared
        under several names counts twice)."""
        run = self._run(run_id)
        if run.state is not RunState.AWAITING_APPROVAL:
            raise CommandRefused(409, f"run {run_id} is {run.state.value}, not awaiting approval")
        if principal in run.approvals:
            raise FourEyesRefused(
                f"{principal} already approved run {run_id}; a second person must approve"
            )
        if token_id in run.approvals.values():
            raise FourEyesRefused("this token already approved the run")
        run.approvals[principal] = token_id
        if len(run.approvals) >= run.approvals_needed:
            run.state = RunState.SOLVING
            return [self._run_updated(run, now, f"approved by {', '.join(sorted(run.approvals))}")]
        missing = run.approvals_needed - len(run.approvals)
        return [self._run_updated(run, now, f"approved by {principal}; {missing} more needed")]

    def reject(self, run_id: str, principal: str, reason: str, now: float) -> list[Publish]:
        run = self._run(run_id)
        if run.state is not RunState.AWAITING_APPROVAL:
            raise CommandRefused(409, f"run {run_id} is {run.state.value}, not awaiting approval")
        run.state = RunState.REJECTED
        self._release(run)
        return [self._run_updated(run, now, f"rejected by {principal}: {reason}".strip(": "))]

    # -- solving --------------------------------------------------------------------------
    def solved(
        self,
        run_id: str,
        result: RunResult,
        solve_seconds: float,
        now: float,
    ) -> list[Publish]:
        """Take a solve's decision as the run's next revision; the messages announcing it.

        The run is ``publish_pending`` until :meth:`published` says they are out."""
        run = self._run(run_id)
        decision = result.decision
        run.revision += 1
        run.decision = decision
        run.decision_hash = result.record.decision_hash
        run.snapshot_hash = result.record.snapshot_hash
        run.solve_seconds = solve_seconds
        run.decided_at = now
        usable = decision.status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
        orders = decision.orders() if usable else []
        respond_by = now + run.protocol.response_hours * 3600
        for order in orders:
            tracked = _track(run, order, respond_by)
            run.orders[tracked.order_id] = tracked
            self.order_index[tracked.order_id] = run.run_id
        recipients = sorted({p for o in orders for p in o.partners()})
        run.recipients = recipients
        run.data_partners = sorted({f.partner_id for f in decision.fulfilment} | set(recipients))
        if not usable:
            run.state = RunState.FAILED
            run.detail = decision.explanation or decision.status.value
            self._release(run)
        elif not orders:
            run.state = RunState.COMPLETED
            run.detail = "nothing to move"
            self._release(run)
        else:
            run.state = RunState.PUBLISHED
            run.detail = f"revision {run.revision}: {len(orders)} orders"
        run.publish_pending = True
        return self.decision_messages(run, now)

    def decision_messages(self, run: Run, now: float) -> list[Publish]:
        """The latest revision's decision summary, each of its pending orders to every
        partner it concerns, and the run's state. What :meth:`solved` announces, and again
        (:meth:`republish`) when that publication may have been cut short: the same order
        ids, so a partner that got an order twice treats it as one."""
        decision = run.decision
        if decision is None:
            return [self._run_updated(run, now, run.detail)]
        current = run.current_orders()
        now_iso = _dt(now).isoformat()
        messages: list[Publish] = []
        summary = DecisionPublished(
            run_id=run.run_id,
            revision=run.revision,
            protocol_id=run.protocol.id,
            protocol_version=run.protocol.version,
            kind=decision.kind,
            status=decision.status.value,
            proven_optimal=decision.proven_optimal,
            explanation=decision.explanation,
            requested_by_tier={str(k): v for k, v in decision.requested_by_tier.items()},
            unmet_by_tier={str(k): v for k, v in decision.unmet_by_tier.items()},
            total_cost=decision.total_cost,
            orders=len(current),
            partners=run.recipients,
            decision_hash=run.decision_hash,
            snapshot_hash=run.snapshot_hash,
            solve_seconds=run.solve_seconds,
            trigger_to_decision_seconds=max(0.0, run.decided_at - run.triggered_at),
            at=_dt(now),
        )
        messages.append(_publish(DECISIONS.name, run.run_id, summary))
        deadlines: dict[float, str] = {}
        for tracked in current:
            if tracked.state is not OrderState.PENDING:
                continue
            respond_by = deadlines.get(tracked.respond_by)
            if respond_by is None:
                respond_by = deadlines[tracked.respond_by] = _dt(tracked.respond_by).isoformat()
            for recipient in (tracked.responder, *tracked.informed):
                # the OrderIssued contract, serialised directly: thousands per decision
                issued = {
                    "type": "OrderIssued",
                    "order_id": tracked.order_id,
                    "run_id": run.run_id,
                    "revision": run.revision,
                    "recipient": recipient,
                    "must_answer": recipient == tracked.responder,
                    "kind": tracked.kind,
                    "order": tracked.payload,
                    "respond_by": respond_by,
                    "at": now_iso,
                }
                messages.append(
                    Publish(PARTNER_ORDERS.name, recipient.encode(), orjson.dumps(issued))
                )
        messages.append(self._run_updated(run, now, run.detail))
        return messages

    def published(self, run_id: str, revision: int) -> bool:
        """The decision messages of ``revision`` are out. True if that is the run's latest
        revision (no longer pending); a newer revision solved meanwhile stays pending."""
        run = self.runs.get(run_id)
        if run is None or run.revision != revision:
            return False
        run.publish_pending = False
        return True

    def republish(self, run_id: str, now: float) -> list[Publish]:
        """The messages of a decision whose publication may have been cut short (a crash, the
        broker unreachable). Pending orders get a fresh deadline: partners may see them only
        now."""
        run = self._run(run_id)
        if run.state is RunState.PUBLISHED:
            respond_by = now + run.protocol.response_hours * 3600
            for order in run.current_orders():
                if order.state is OrderState.PENDING:
                    order.respond_by = respond_by
        return self.decision_messages(run, now)

    def failed(self, run_id: str, error: str, now: float) -> list[Publish]:
        run = self._run(run_id)
        run.state = RunState.FAILED
        self._release(run)
        return [self._run_updated(run, now, f"solver error: {error}")]

    # -- partner answers and deadlines -----------------------------------------------------
    def acknowledge(
        self, order_id: str, partner_id: str, accepted: bool, reason: str | None, now: float
    ) -> tuple[list[Publish], bool]:
        """Apply a partner's answer; returns (messages, needs_replan)."""
        run_id = self.order_index.get(order_id)
        if run_id is None:
            return [], False
        run = self.runs[run_id]
        order = run.orders[order_id]
        if partner_id != order.responder or order.state is not OrderState.PENDING:
            return [], False
        if run.state is not RunState.PUBLISHED or order.revision != run.revision:
            return [], False
        if accepted:
            order.state = OrderState.ACCEPTED
            _commit(run.adjustments, order)
            # the partner's own words go back to it only, not to the other party
            messages = self._order_updated(run, order, now, reason or "", to_informed="")
            if all(o.state is OrderState.ACCEPTED for o in run.current_orders()):
                run.state = RunState.COMPLETED
                run.detail = f"all {len(run.current_orders())} orders accepted"
                self._release(run)
                messages.append(self._run_updated(run, now, run.detail))
            return messages, False
        order.state = OrderState.DECLINED
        return self._replan(
            run,
            order,
            now,
            f"declined by {partner_id}: {reason or ''}".strip(": "),
            to_informed=f"declined by {partner_id}",  # the other party knows who; not why
            in_detail="declined",  # the run's detail is seen by operators: nobody named
        )

    def answer_problem(
        self, order_id: str, partner_id: str, accepted: bool
    ) -> tuple[str, str] | None:
        """Why a partner's answer cannot take effect, as (reason, detail), or ``None``: it
        applies, or it repeats the answer already given (at-least-once delivery, answers read
        again after a restart), which :meth:`acknowledge` ignores."""
        run_id = self.order_index.get(order_id)
        run = self.runs.get(run_id) if run_id is not None else None
        order = run.orders.get(order_id) if run is not None else None
        if run is None or order is None:
            return "unknown_order", f"no order {order_id!r}"
        if partner_id != order.responder:
            return "not_responder", f"{partner_id!r} does not answer order {order_id!r}"
        if order.state is OrderState.PENDING:
            if run.state is RunState.PUBLISHED and order.revision == run.revision:
                return None
            return "order_closed", f"order {order_id!r}: run {run.run_id} is {run.state.value}"
        if order.state is (OrderState.ACCEPTED if accepted else OrderState.DECLINED):
            return None
        return "order_closed", f"order {order_id!r} is already {order.state.value}"

    def forget_finished(self, cutoff: float) -> list[str]:
        """Retention: drop finished runs (completed, rejected, failed) triggered before
        ``cutoff``; active runs are kept whatever their age. The ids dropped."""
        finished = (RunState.COMPLETED, RunState.REJECTED, RunState.FAILED)
        gone = [
            run_id
            for run_id, run in self.runs.items()
            if run.state in finished and run.triggered_at < cutoff
        ]
        for run_id in gone:
            run = self.runs.pop(run_id)
            for order_id in run.orders:
                self.order_index.pop(order_id, None)
        return gone

    def tick(self, now: float) -> tuple[list[Publish], list[str]]:
        """Expire unanswered orders; returns (messages, run ids to re-plan)."""
        messages: list[Publish] = []
        replan: list[str] = []
        for run in list(self.runs.values()):
            if run.state is not RunState.PUBLISHED or run.publish_pending:
                continue  # orders not known to be out do not expire
            expired = [
                o
                for o in run.current_orders()
                if o.state is OrderState.PENDING and o.respond_by <= now
            ]
            for order in expired:
                order.state = OrderState.EXPIRED
            if expired:
                out, needs = self._replan(run, expired, now, "no answer before the deadline")
                messages.extend(out)
                if needs:
                    replan.append(run.run_id)
        return messages, replan

    def _replan(
        self,
        run: Run,
        failed: TrackedOrder | list[TrackedOrder],
        now: float,
        why: str,
        to_informed: str | None = None,
        in_detail: str | None = None,
    ) -> tuple[list[Publish], bool]:
        """Re-plan without ``failed``. ``why`` goes to the order's responder, ``to_informed``
        (default ``why``) to the other parties, ``in_detail`` (default ``why``) into the
        run's detail, which operators and auditors see."""
        orders = failed if isinstance(failed, list) else [failed]
        messages = []
        for order in orders:
            _exclude(run.adjustments, order)
            messages.extend(self._order_updated(run, order, now, why, to_informed))
        # a purchasing pool is all or nothing per material: when a participant drops out,
        # the shares already accepted for that material no longer hold (the pool's volume
        # and so its price change) and are issued again; other materials' shares stand
        repooled = {o.source.material_id for o in orders if isinstance(o.source, PurchaseShare)}
        for other in run.current_orders():
            if other.state is OrderState.PENDING:
                other.state = OrderState.CANCELLED
                messages.extend(self._order_updated(run, other, now, "superseded by a re-plan"))
            elif other.state is OrderState.ACCEPTED and isinstance(other.source, PurchaseShare):
                material = other.source.material_id
                if material in repooled:
                    other.state = OrderState.CANCELLED
                    reason = f"the pool for {material} changed; a new share follows"
                    messages.extend(self._order_updated(run, other, now, reason))
                else:
                    run.adjustments.excluded_demands.add((other.source.partner_id, material))
        if run.revision >= MAX_REVISIONS:
            run.state = RunState.FAILED
            run.detail = f"gave up after {run.revision} revisions"
            self._release(run)
            messages.append(self._run_updated(run, now, run.detail))
            return messages, False
        run.state = RunState.SOLVING
        run.detail = f"re-planning without {len(orders)} order(s): {in_detail or why}"
        messages.append(self._run_updated(run, now, run.detail))
        return messages, True

    # -- helpers ----------------------------------------------------------------------------
    def _run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise CommandRefused(404, f"no run {run_id!r}")
        return run

    def _release(self, run: Run) -> None:
        if self.active_scopes.get(run.scope_key) == run.run_id:
            del self.active_scopes[run.scope_key]

    def _run_updated(self, run: Run, now: float, detail: str) -> Publish:
        run.detail = detail
        event = RunUpdated(
            run_id=run.run_id,
            protocol_id=run.protocol.id,
            protocol_version=run.protocol.version,
            protocol_hash=run.protocol_hash,
            purpose=run.protocol.purpose,
            snapshot_hash=run.snapshot_hash,
            data_partners=run.data_partners,
            recipients=run.recipients,
            scope_key=run.scope_key,
            state=run.state,
            revision=run.revision,
            trigger=run.trigger,
            approvals=sorted(run.approvals),
            approvals_needed=run.approvals_needed,
            detail=detail,
            at=_dt(now),
        )
        return _publish(RUNS.name, run.run_id, event)

    def _order_updated(
        self, run: Run, order: TrackedOrder, now: float, reason: str, to_informed: str | None = None
    ) -> list[Publish]:
        """The order's new state to its responder (``reason``) and the other parties
        (``to_informed``, default ``reason``)."""
        return [
            _publish(
                PARTNER_ORDERS.name,
                recipient,
                OrderUpdated(
                    order_id=order.order_id,
                    run_id=run.run_id,
                    revision=order.revision,
                    recipient=recipient,
                    state=order.state,
                    reason=(
                        reason
                        if recipient == order.responder or to_informed is None
                        else to_informed
                    ),
                    at=_dt(now),
                ),
            )
            for recipient in (order.responder, *order.informed)
        ]


def recover(runs: list[Run], has_record: Callable[[str, int], bool]) -> None:
    """Settle runs read back from checkpoints before the service goes on with them.

    ``has_record(run_id, revision)``: that revision's run record is stored.
    - A run that was solving (again) and whose next revision has a record solved and may
      have published that revision before the stop: the re-solve gets a fresh revision
      (new order ids; that record stays reproducible).
    - A pending decision without its record never went out: taken back
      (:func:`take_back_undecided`).
    - A run solving again after its decision went out in part (a decline) is solved again;
      the new revision supersedes the old one, nothing of it is published again (it would
      be announced under the new revision number).
    Other pending decisions are published again by the service.
    """
    for run in runs:
        if run.state is RunState.SOLVING and has_record(run.run_id, run.revision + 1):
            run.revision += 1
        if run.publish_pending and not has_record(run.run_id, run.revision):
            take_back_undecided(run)
        elif run.state is RunState.SOLVING:
            run.publish_pending = False


def take_back_undecided(run: Run) -> None:
    """Restoring a run whose latest decision has no run record: its messages never went out
    (a decision is published only after its record is written), so the run solves again;
    the next revision gets a new number."""
    for order in run.current_orders():
        del run.orders[order.order_id]
    run.state = RunState.SOLVING
    run.publish_pending = False
    run.detail = f"solving again: revision {run.revision} was not published"


def _track(run: Run, order: Order, respond_by: float) -> TrackedOrder:
    order_id = f"{run.run_id}.r{run.revision}.{order.order_id}"
    payload = order.model_dump(mode="json")
    payload.pop("order_id", None)
    informed: tuple[str, ...]
    if isinstance(order, TransferOrder):
        kind, responder, informed = "transfer", order.from_partner, (order.to_partner,)
    elif isinstance(order, CapacityAssignment):
        kind, responder, informed = "capacity", order.provider_partner, (order.to_partner,)
    elif isinstance(order, PurchaseShare):
        kind, responder, informed = "purchase", order.partner_id, ()
    else:  # pragma: no cover - every order kind is handled above
        raise TypeError(type(order).__name__)
    informed = tuple(p for p in informed if p != responder)
    return TrackedOrder(
        order_id=order_id,
        revision=run.revision,
        kind=kind,
        responder=responder,
        informed=informed,
        payload=payload,
        respond_by=respond_by,
        source=order,
    )


def _exclude(adjust: Adjustments, order: TrackedOrder) -> None:
    source = order.source
    if isinstance(source, TransferOrder):
        adjust.excluded_donors.add((source.from_partner, source.from_site, source.material_id))
    elif isinstance(source, CapacityAssignment):
        adjust.excluded_offers.add(source.offer_id)
    elif isinstance(source, PurchaseShare):
        adjust.excluded_demands.add((source.partner_id, source.material_id))


def _commit(adjust: Adjustments, order: TrackedOrder) -> None:
    """An accepted transfer or capacity assignment stands: a re-plan works on what is left."""
    source = order.source
    if isinstance(source, TransferOrder):
        key = (source.from_partner, source.from_site, source.material_id)
        adjust.given[key] = adjust.given.get(key, 0.0) + source.quantity
        adjust.received[source.need_id] = adjust.received.get(source.need_id, 0.0) + source.quantity
    elif isinstance(source, CapacityAssignment):
        given, received = adjust.hours_given, adjust.hours_received
        given[source.offer_id] = given.get(source.offer_id, 0.0) + source.hours
        received[source.need_id] = received.get(source.need_id, 0.0) + source.hours
    # a purchase share is conditional until every share of its material is accepted (see
    # Coordinator._replan): nothing to commit here


def _count_states(orders: list[TrackedOrder]) -> dict[OrderState, int]:
    counts: dict[OrderState, int] = {}
    for order in orders:
        counts[order.state] = counts.get(order.state, 0) + 1
    return counts


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _publish(topic: str, key: str, event: Any) -> Publish:
    return Publish(topic, key.encode(), orjson.dumps(event.model_dump(mode="json")))
