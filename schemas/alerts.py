"""Alerts the ledger emits: shortages starting, worsening and ending, and material balances."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import (
    Contract,
    Criticality,
    EventId,
    MaterialId,
    PartnerId,
    Quantity,
    Severity,
    SiteId,
    Timestamp,
    Total,
    Unit,
)

ShortageCause = Literal["below_safety_stock", "low_coverage", "stock_out", "need_reported"]


class ShortageDetected(Contract):
    """A shortage started, or an open shortage got more severe."""

    type: Literal["ShortageDetected"] = "ShortageDetected"
    alert_id: EventId
    partner_id: PartnerId
    site_id: SiteId
    material_id: MaterialId
    unit: Unit
    severity: Severity
    previous_severity: Severity | None = None
    causes: list[ShortageCause]
    criticality: Criticality
    on_hand: Quantity
    safety_stock: Quantity
    coverage_days: float | None = Field(description="on_hand / daily consumption; null if none.")
    need_quantity: Total = 0.0
    detected_at: Timestamp
    source_event_id: EventId


class ShortageResolved(Contract):
    """An open shortage ended."""

    type: Literal["ShortageResolved"] = "ShortageResolved"
    alert_id: EventId
    partner_id: PartnerId
    site_id: SiteId
    material_id: MaterialId
    previous_severity: Severity
    resolved_at: Timestamp
    source_event_id: EventId


class MaterialBalance(Contract):
    """Balance of one material over one partition: open need vs. surplus above safety stock."""

    material_id: MaterialId
    unit: Unit
    total_need: Total
    total_surplus: Total = Field(description="Stock above safety stock, summed.")
    partners: int = Field(ge=0, description="Distinct partners holding the material.")


class MaterialBalancesReported(Contract):
    """Balances of the materials that changed in one partition since the last report.

    The alliance-wide balance of a material is the sum, over all partitions, of the
    latest balance reported for it.
    """

    type: Literal["MaterialBalancesReported"] = "MaterialBalancesReported"
    partition: int = Field(ge=0)
    balances: list[MaterialBalance]
    reported_at: Timestamp


Alert = ShortageDetected | ShortageResolved | MaterialBalancesReported


class DeadLetter(Contract):
    """A message that could not be processed, kept with its original bytes."""

    type: Literal["DeadLetter"] = "DeadLetter"
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: str | None
    reason: str
    errors: list[str] = Field(default_factory=list)
    original_base64: str
    service: str
    received_at: Timestamp
