"""What partners have committed to in advance; protocols may only use what these allow.

Agreements are part of the alliance file (``schemas.alliance.Alliance``) and of every
scenario snapshot a protocol runs on.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.common import Capability, Contract, MaterialId, PartnerId

Share = Annotated[float, Field(ge=0, le=1)]


class SurplusSharingAgreement(Contract):
    """A donor may give at most ``share`` of its stock above safety stock."""

    partner_id: PartnerId
    share: Share
    materials: list[MaterialId] | None = Field(
        default=None, description="Materials covered; omitted means all materials."
    )


class CapacityLendingAgreement(Contract):
    partner_id: PartnerId
    capabilities: list[Capability] | None = Field(
        default=None, description="Capabilities the partner lends; omitted means all it offers."
    )


class PoolParticipation(Contract):
    partner_id: PartnerId
    materials: list[MaterialId] = Field(min_length=1)


class Agreements(Contract):
    surplus_sharing: list[SurplusSharingAgreement] = Field(default_factory=list)
    capacity_lending: list[CapacityLendingAgreement] = Field(default_factory=list)
    purchasing_pools: list[PoolParticipation] = Field(default_factory=list)
