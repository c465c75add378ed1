"""Shared building blocks of the contracts: identifiers, units, enums, base model."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

PARTNER_ID_PATTERN = r"^[a-z][a-z0-9-]{1,39}$"
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
MATERIAL_ID_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,39}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$"

PartnerId = Annotated[
    str,
    Field(
        pattern=PARTNER_ID_PATTERN,
        description="Partner id: lowercase letter, then 1-39 of a-z, 0-9, '-'.",
        examples=["klinikum-nord"],
    ),
]
SiteId = Annotated[
    str,
    Field(
        pattern=SITE_ID_PATTERN,
        description="Site id within a partner: 1-40 of a-z, 0-9, '-'.",
        examples=["lager-1"],
    ),
]
MaterialId = Annotated[
    str,
    Field(
        pattern=MATERIAL_ID_PATTERN,
        description="Alliance material code: 1-40 of A-Z, 0-9, '.', '_', '-'.",
        examples=["NACL-500ML"],
    ),
]
EventId = Annotated[
    str,
    Field(
        pattern=EVENT_ID_PATTERN,
        description="Sender-chosen unique id (8-64 chars, e.g. a UUID) used for de-duplication.",
        examples=["0b7e3c1e-8d2a-4f55-9a43-2f1d9c7e2a10"],
    ),
]


Quantity = Annotated[
    float,
    Field(
        ge=0,
        le=1e12,
        allow_inf_nan=False,
        description="Non-negative quantity in the stated unit.",
    ),
]
#: A sum of quantities (alert and balance totals): each part is a Quantity, the sum may exceed
#: a single Quantity's bound.
Total = Annotated[
    float,
    Field(ge=0, allow_inf_nan=False, description="Non-negative sum of quantities in the unit."),
]
#: Timestamps and days outside these bounds are typos or clock faults, not crisis data (a
#: year-9999 date would also overflow date arithmetic downstream).
EARLIEST = date(2000, 1, 1)
LATEST = date(2199, 12, 31)


def _plausible_time(value: datetime) -> datetime:
    if not datetime(2000, 1, 1, tzinfo=UTC) <= value < datetime(2200, 1, 1, tzinfo=UTC):
        raise ValueError(f"must lie in the years 2000-2199, got {value.isoformat()}")
    return value


def _plausible_day(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must lie in the years 2000-2199, got {value.isoformat()}")
    return value


Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_plausible_time),
    Field(
        description="ISO 8601 timestamp with a timezone offset, e.g. 2026-11-22T08:00:00+01:00 "
        "(years 2000-2199)."
    ),
]
Day = Annotated[
    date,
    AfterValidator(_plausible_day),
    Field(description="ISO 8601 day, e.g. 2026-11-30 (years 2000-2199)."),
]


class Unit(StrEnum):
    """Units a quantity may be expressed in; a material always uses one unit."""

    PIECES = "pcs"
    KILOGRAM = "kg"
    TONNE = "t"
    LITRE = "l"
    CUBIC_METRE = "m3"
    KILOWATT_HOUR = "kWh"
    MEGAWATT_HOUR = "MWh"
    MACHINE_HOUR = "h"


class Criticality(StrEnum):
    """Criticality class of a partner or a need.

    Tiers are strict priorities for protocols: hospital (1) before critical
    infrastructure (2) before normal (3).
    """

    CRITICAL_INFRASTRUCTURE = "critical_infrastructure"
    HOSPITAL = "hospital"
    NORMAL = "normal"

    @property
    def tier(self) -> int:
        return _TIERS[self]


_TIERS = {
    Criticality.HOSPITAL: 1,
    Criticality.CRITICAL_INFRASTRUCTURE: 2,
    Criticality.NORMAL: 3,
}


class Severity(StrEnum):
    """Shortage severity, ordered: watch < shortage < critical."""

    WATCH = "watch"
    SHORTAGE = "shortage"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.WATCH: 1, Severity.SHORTAGE: 2, Severity.CRITICAL: 3}


class Contract(BaseModel):
    """Base of every contract: strict, unknown fields rejected, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


__all__ = [
    "Contract",
    "Criticality",
    "Day",
    "EventId",
    "MaterialId",
    "PartnerId",
    "Quantity",
    "Severity",
    "SiteId",
    "Timestamp",
    "Unit",
]

# an id a partner chooses for one of its items (a need, an offer): unique per partner
ItemId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
_NAME = r"^[a-z][a-z0-9_-]{1,39}$"
Capability = Annotated[
    str,
    Field(
        pattern=_NAME,
        description="A production capability, e.g. cnc-milling, sterilisation.",
        examples=["cnc-milling"],
    ),
]
Qualification = Annotated[str, Field(pattern=_NAME, examples=["iso-13485"])]
