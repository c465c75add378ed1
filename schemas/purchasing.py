"""Supplier quotes for joint purchasing pools: the only prices in Verbund.

Coordinators enter a supplier's volume-discount tiers for a material through the
coordinator API (``verbund purchasing quote set``); the coordinator records each change on
``verbund.purchasing.quotes`` (keyed ``supplier/material``), which only the coordinator and
the audit service read. Partners never send or see quotes: a pool participant sees only its
own purchase share, what it pays and what it saves.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from schemas.common import Contract, ItemId, MaterialId, Timestamp
from schemas.coordination import CommandId, Principal
from schemas.scenario import PriceTier, SupplierOffer, check_tiers


class SupplierQuoteSet(Contract):
    """A supplier's price tiers for a material, as entered by a coordinator.

    An empty ``tiers`` list withdraws the quote. A quote past ``valid_until`` is not used
    by new runs."""

    type: Literal["SupplierQuoteSet"] = "SupplierQuoteSet"
    command_id: CommandId
    supplier_id: ItemId
    material_id: MaterialId
    tiers: list[PriceTier] = Field(default_factory=list, max_length=50)
    valid_until: date | None = None
    set_by: Principal
    token_id: str = Field(default="", max_length=64)
    at: Timestamp

    @field_validator("tiers")
    @classmethod
    def _increasing(cls, tiers: list[PriceTier]) -> list[PriceTier]:
        check_tiers(tiers)  # reported on the field ``tiers``
        return tiers

    @property
    def key(self) -> tuple[str, str]:
        return (self.supplier_id, self.material_id)

    def usable(self, today: date) -> bool:
        return bool(self.tiers) and (self.valid_until is None or self.valid_until >= today)

    def offer(self) -> SupplierOffer:
        return SupplierOffer.model_construct(
            supplier_id=self.supplier_id, material_id=self.material_id, tiers=list(self.tiers)
        )
