"""Protocol files: versioned, reviewed crisis playbooks (YAML).

A protocol says when it triggers, who must approve a run, which optimization it
runs with which parameters, and how long partners have to answer an order.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import Field, ValidationInfo, field_validator, model_validator

from schemas.common import Contract, Criticality, MaterialId

ProtocolId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,63}$", examples=["hospital-saline"])]
Tier = Annotated[int, Field(ge=1, le=3)]
#: How far after today ``last_reviewed`` may lie (a later date is taken for a typo).
MAX_REVIEW_AHEAD_DAYS = 366


class Scope(Contract):
    """What a protocol covers; an empty list means no restriction."""

    materials: list[MaterialId] = Field(default_factory=list)
    sectors: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)


class ManualTrigger(Contract):
    type: Literal["manual"] = "manual"


class CoverageTrigger(Contract):
    """Fires when a partner of the given criticality has coverage under ``days``."""

    type: Literal["coverage_below"] = "coverage_below"
    criticality: Criticality
    days: float = Field(gt=0, le=365)


class ShortfallTrigger(Contract):
    """Fires when the alliance-wide shortfall of a material exceeds ``fraction``."""

    type: Literal["alliance_shortfall"] = "alliance_shortfall"
    fraction: float = Field(gt=0, le=1)


Trigger = Annotated[ManualTrigger | CoverageTrigger | ShortfallTrigger, Field(discriminator="type")]


class ApprovalPolicy(StrEnum):
    AUTOMATIC = "automatic"
    ONE_COORDINATOR = "one_coordinator"
    TWO_COORDINATORS = "two_coordinators"

    @property
    def approvals_needed(self) -> int:
        return {"automatic": 0, "one_coordinator": 1, "two_coordinators": 2}[self.value]


class MinFill(Contract):
    """Hard requirement: the needs of ``tier`` must be filled to at least ``fraction``."""

    tier: Tier
    fraction: float = Field(gt=0, le=1)


class ReallocationParameters(Contract):
    kind: Literal["material_reallocation"] = "material_reallocation"
    fairness: bool = Field(
        default=False, description="Within a tier, maximize the lowest fill ratio first."
    )
    whole_units: bool = Field(default=False, description="Transfers in whole units (MILP).")
    pack_sizes: bool = Field(default=False, description="Transfers in whole packs (MILP).")
    min_shipments: bool = Field(
        default=False, description="Respect materials' minimum shipment size (MILP)."
    )
    max_distance_km: float | None = Field(default=None, gt=0)
    include_position_shortfalls: bool = Field(
        default=False,
        description="Treat positions below safety stock as needs (safety stock - on hand).",
    )
    min_fill: list[MinFill] = Field(default_factory=list)


class CapacityParameters(Contract):
    kind: Literal["capacity_sharing"] = "capacity_sharing"
    max_distance_km: float | None = Field(default=None, gt=0)
    min_fill: list[MinFill] = Field(default_factory=list)


class PurchasingParameters(Contract):
    kind: Literal["joint_purchasing"] = "joint_purchasing"
    split: Literal["proportional_to_standalone_cost"] = "proportional_to_standalone_cost"


Optimization = Annotated[
    ReallocationParameters | CapacityParameters | PurchasingParameters,
    Field(discriminator="kind"),
]


class SolverSettings(Contract):
    name: Literal["highs", "cbc"] = "highs"
    time_limit_s: float = Field(default=60, gt=0, le=3600)
    mip_gap: float = Field(default=1e-6, ge=0, le=1)


class Protocol(Contract):
    id: ProtocolId
    title: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1, le=1_000_000)
    owner: str = Field(min_length=1, max_length=120)
    purpose: str = Field(
        min_length=10,
        max_length=500,
        description="Why the alliance runs this protocol, in one or two sentences: the "
        "legitimate aim its data use serves (antitrust and GDPR purpose limitation). "
        "Recorded with every run in the audit log.",
    )
    description: str = Field(default="", max_length=4000)
    last_reviewed: date = Field(
        description="Date of the last review. At most "
        f"{MAX_REVIEW_AHEAD_DAYS} days after today (a later date is taken for a typo), "
        "and the review due date (this date + review_interval_days) must be a valid date.",
    )
    review_interval_days: int = Field(ge=1, le=1096)
    scope: Scope = Field(default_factory=Scope)
    triggers: list[Trigger] = Field(min_length=1)
    approval: ApprovalPolicy
    optimization: Optimization
    solver: SolverSettings = Field(default_factory=SolverSettings)
    response_hours: float = Field(gt=0, le=720, description="Time partners have to answer.")

    @field_validator("last_reviewed")
    @classmethod
    def _reviewed_not_far_ahead(cls, value: date) -> date:
        today = date.today()
        if (value - today).days > MAX_REVIEW_AHEAD_DAYS:
            raise ValueError(
                f"{value.isoformat()} is more than {MAX_REVIEW_AHEAD_DAYS} days in the future "
                f"(today is {today.isoformat()}); a typo?"
            )
        return value

    @field_validator("version", "review_interval_days", mode="before")
    @classmethod
    def _whole_number_not_boolean(cls, value: object) -> object:
        # protocol files are read leniently (strict=False), which takes true for 1
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {str(value).lower()}")
        return value

    @field_validator("review_interval_days")
    @classmethod
    def _review_due_in_range(cls, value: int, info: ValidationInfo) -> int:
        reviewed = info.data.get("last_reviewed")  # absent when it was refused
        if isinstance(reviewed, date):
            try:
                reviewed + timedelta(days=value)
            except OverflowError:
                raise ValueError(
                    f"last_reviewed {reviewed.isoformat()} + {value} days is past the last "
                    "representable date"
                ) from None
        return value

    @model_validator(mode="after")
    def _min_fill_tiers_unique(self) -> Protocol:
        opt = self.optimization
        if isinstance(opt, ReallocationParameters | CapacityParameters):
            tiers = [m.tier for m in opt.min_fill]
            if len(tiers) != len(set(tiers)):
                raise ValueError("optimization.min_fill: one entry per tier")
        return self

    @property
    def kind(self) -> str:
        return self.optimization.kind

    @property
    def review_due(self) -> date:
        return self.last_reviewed + timedelta(days=self.review_interval_days)

    def review_overdue(self, today: date) -> bool:
        return today > self.review_due

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (sorted keys): the basis of the protocol content hash."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


__all__ = [
    "ApprovalPolicy",
    "CapacityParameters",
    "CoverageTrigger",
    "ManualTrigger",
    "MinFill",
    "Optimization",
    "Protocol",
    "PurchasingParameters",
    "ReallocationParameters",
    "Scope",
    "ShortfallTrigger",
    "SolverSettings",
    "Trigger",
]
