"""Coordinator contracts: commands (imperative), run and order events (past tense).

Commands arrive through the coordinator's HTTP API (or a trigger rule) and are
published to ``verbund.commands`` as the record of who asked for what. Run and
decision events go to ``verbund.runs`` / ``verbund.decisions``; each partner's
orders go to ``verbund.partner.orders`` keyed by that partner's id, so a partner
only ever receives the orders that involve it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.common import Contract, PartnerId, Timestamp

RunId = Annotated[str, Field(pattern=r"^run-[0-9a-f]{12}$", examples=["run-3f2a9c0d1e4b"])]
Principal = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$", description="Coordinator or rule identity."),
]
CommandId = Annotated[str, Field(pattern=r"^cmd-[0-9a-f]{12,32}$")]
OrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,95}$")]


class RunState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    SOLVING = "solving"
    PUBLISHED = "published"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (RunState.AWAITING_APPROVAL, RunState.SOLVING, RunState.PUBLISHED)


class OrderState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class TriggerProtocol(Contract):
    type: Literal["TriggerProtocol"] = "TriggerProtocol"
    command_id: CommandId
    protocol_id: str
    requested_by: Principal
    reason: str = Field(default="", max_length=500)
    at: Timestamp


class ApproveRun(Contract):
    type: Literal["ApproveRun"] = "ApproveRun"
    command_id: CommandId
    run_id: RunId
    principal: Principal
    token_id: str = Field(description="Which of the principal's tokens was used (hash prefix).")
    at: Timestamp


class RejectRun(Contract):
    type: Literal["RejectRun"] = "RejectRun"
    command_id: CommandId
    run_id: RunId
    principal: Principal
    token_id: str
    reason: str = Field(default="", max_length=500)
    at: Timestamp


class RunUpdated(Contract):
    """A run changed state (started, approved, solved, published, completed, ...)."""

    type: Literal["RunUpdated"] = "RunUpdated"
    run_id: RunId
    protocol_id: str
    protocol_version: int
    protocol_hash: str
    purpose: str = Field(default="", description="The protocol's declared purpose (audit).")
    snapshot_hash: str = Field(
        default="", description="Content hash of the alliance state the run used (once solved)."
    )
    data_partners: list[PartnerId] = Field(
        default_factory=list,
        description="Partners whose data entered the decision (needs and orders; audit).",
    )
    recipients: list[PartnerId] = Field(
        default_factory=list,
        description="Partners who received the result (one order copy each; audit).",
    )
    scope_key: str
    state: RunState
    revision: int = Field(ge=0, description="Decision revision; re-plans increase it.")
    trigger: str
    approvals: list[Principal] = Field(default_factory=list)
    approvals_needed: int = Field(ge=0)
    detail: str = ""
    at: Timestamp


class DecisionPublished(Contract):
    """Summary of a decision (no per-partner detail): for operators, dashboards and audit."""

    type: Literal["DecisionPublished"] = "DecisionPublished"
    run_id: RunId
    revision: int = Field(ge=1)
    protocol_id: str
    protocol_version: int
    kind: str
    status: str
    proven_optimal: bool
    explanation: str = ""
    requested_by_tier: dict[str, float]
    unmet_by_tier: dict[str, float]
    total_cost: float
    orders: int = Field(ge=0)
    partners: list[PartnerId] = Field(description="Partners that received orders (audit).")
    decision_hash: str
    snapshot_hash: str
    solve_seconds: float
    trigger_to_decision_seconds: float
    at: Timestamp


class OrderIssued(Contract):
    """One order, sent to one partner involved in it (donor and receiver each get a copy)."""

    type: Literal["OrderIssued"] = "OrderIssued"
    order_id: OrderId
    run_id: RunId
    revision: int = Field(ge=1)
    recipient: PartnerId
    must_answer: bool = Field(description="True for the party whose acceptance is required.")
    kind: Literal["transfer", "capacity", "purchase"]
    order: dict[str, Any] = Field(description="The order: parties, material, quantity, due.")
    respond_by: Timestamp
    at: Timestamp


class OrderUpdated(Contract):
    """An order was accepted, declined, expired, or cancelled by a re-plan."""

    type: Literal["OrderUpdated"] = "OrderUpdated"
    order_id: OrderId
    run_id: RunId
    revision: int
    recipient: PartnerId
    state: OrderState
    reason: str = ""
    at: Timestamp


class PartnerRemoved(Contract):
    """A partner left the alliance: the ledger drops its live state (positions, needs,
    offers, freshness) and writes the removal to its changelog, so a restart does not bring
    it back; the console and the coordinator follow that changelog. Published by
    ``verbund partner remove`` to ``verbund.partner.events`` keyed by the partner id (so it is
    ordered after everything the partner sent) and to ``verbund.commands`` (the record of who
    asked). The audit log keeps its hash chain: see docs/retention-and-erasure.md."""

    type: Literal["PartnerRemoved"] = "PartnerRemoved"
    command_id: CommandId
    partner_id: PartnerId
    requested_by: Principal
    reason: str = Field(default="", max_length=500)
    at: Timestamp
