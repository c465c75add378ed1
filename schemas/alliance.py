"""The alliance directory: partners, their sites and criticality, and shortage thresholds.

Loaded from a YAML file (``VERBUND_ALLIANCE_FILE``). Partner events only carry ids;
everything about a partner that rules need (criticality, region, sector) is here.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from schemas.agreements import Agreements
from schemas.common import Contract, Criticality, PartnerId, SiteId
from schemas.config_files import UnreadableFile, read_document
from schemas.errors import field_errors


class Site(Contract):
    id: SiteId
    name: str = Field(min_length=1, max_length=120)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Partner(Contract):
    id: PartnerId
    name: str = Field(min_length=1, max_length=120)
    sector: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,39}$", examples=["hospital", "pharma"])
    region: str = Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", examples=["DE-BY"])
    criticality: Criticality
    sites: list[Site] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_sites(self) -> Partner:
        ids = [s.id for s in self.sites]
        if len(ids) != len(set(ids)):
            raise ValueError(f"partner {self.id}: site ids must be unique")
        return self


class CoverageThresholds(Contract):
    """Coverage (days of stock at current consumption) below which a position is flagged."""

    watch_days: float = Field(ge=0, le=365)
    critical_days: float = Field(ge=0, le=365)

    @model_validator(mode="after")
    def _ordered(self) -> CoverageThresholds:
        if self.critical_days > self.watch_days:
            raise ValueError("critical_days must not exceed watch_days")
        return self


def _default_thresholds() -> dict[Criticality, CoverageThresholds]:
    return {
        Criticality.HOSPITAL: CoverageThresholds(watch_days=14, critical_days=3),
        Criticality.CRITICAL_INFRASTRUCTURE: CoverageThresholds(watch_days=10, critical_days=3),
        Criticality.NORMAL: CoverageThresholds(watch_days=7, critical_days=2),
    }


class ShortageRules(Contract):
    """Shortage detection thresholds, per criticality class."""

    coverage: dict[Criticality, CoverageThresholds] = Field(default_factory=_default_thresholds)

    def thresholds(self, criticality: Criticality) -> CoverageThresholds:
        return self.coverage.get(criticality) or _default_thresholds()[criticality]


class Alliance(Contract):
    name: str = Field(min_length=1, max_length=120)
    partners: list[Partner] = Field(min_length=1)
    shortage_rules: ShortageRules = Field(default_factory=ShortageRules)
    agreements: Agreements = Field(
        default_factory=Agreements,
        description="What partners committed to in advance; protocols use only what they allow.",
    )

    @model_validator(mode="after")
    def _unique_partners(self) -> Alliance:
        ids = [p.id for p in self.partners]
        if len(ids) != len(set(ids)):
            raise ValueError("partner ids must be unique")
        known = set(ids)
        agreements = self.agreements
        referenced = [
            *(a.partner_id for a in agreements.surplus_sharing),
            *(a.partner_id for a in agreements.capacity_lending),
            *(a.partner_id for a in agreements.purchasing_pools),
        ]
        unknown = sorted(set(referenced) - known)
        if unknown:
            raise ValueError(f"agreements name unknown partners: {', '.join(unknown)}")
        return self

    @cached_property
    def by_id(self) -> dict[str, Partner]:
        return {p.id: p for p in self.partners}

    def partner(self, partner_id: str) -> Partner | None:
        return self.by_id.get(partner_id)


class AllianceFileError(ValueError):
    """An alliance file could not be read; the message names the file and the field."""


def load_alliance(path: Path) -> Alliance:
    try:
        data = read_document(path)
    except UnreadableFile as exc:
        raise AllianceFileError(f"{path}: cannot read alliance file: {exc}") from exc
    try:
        return Alliance.model_validate(data, strict=False)
    except ValidationError as exc:
        raise AllianceFileError(f"{path}: " + "; ".join(field_errors(exc))) from exc
