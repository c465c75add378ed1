"""Partner events: what partner systems send to the alliance (Kafka or HTTP gateway).

Every event is an envelope with ``type``, ``schema_version``, ``event_id``,
``partner_id`` and ``occurred_at``. Unknown fields are rejected, so prices,
customer names or sales figures cannot slip in.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter, field_validator, model_validator

from schemas import SCHEMA_VERSION
from schemas.common import (
    Capability,
    Contract,
    Criticality,
    Day,
    EventId,
    ItemId,
    MaterialId,
    PartnerId,
    Qualification,
    Quantity,
    SiteId,
    Timestamp,
    Unit,
)

MAX_POSITIONS_PER_EVENT = 10_000


class Envelope(Contract):
    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of the contract; currently 1."
    )
    event_id: EventId
    partner_id: PartnerId
    occurred_at: Timestamp


class StockPosition(Contract):
    """Stock of one material at one site of the sending partner."""

    # unit is kept as its plain string value: positions are the hot path of ingest
    model_config = ConfigDict(use_enum_values=True)

    site_id: SiteId
    material_id: MaterialId
    unit: Unit
    on_hand: Quantity
    safety_stock: Quantity
    daily_consumption: Quantity = Field(
        description="Expected consumption per day, in the same unit; 0 if not consumed."
    )


class StockReported(Envelope):
    """A stock export: many positions at once, as an ERP/WMS export produces them."""

    type: Literal["StockReported"] = "StockReported"
    positions: list[StockPosition] = Field(min_length=1, max_length=MAX_POSITIONS_PER_EVENT)

    @field_validator("positions")
    @classmethod
    def _unique_positions(cls, positions: list[StockPosition]) -> list[StockPosition]:
        if len({(p.site_id, p.material_id) for p in positions}) == len(positions):
            return positions
        seen: set[tuple[str, str]] = set()
        for index, position in enumerate(positions):
            key = (position.site_id, position.material_id)
            if key in seen:
                raise ValueError(f"position {index} repeats site {key[0]!r} material {key[1]!r}")
            seen.add(key)
        return positions


class CapacityOffered(Envelope):
    """Idle production capacity a partner offers to the alliance."""

    type: Literal["CapacityOffered"] = "CapacityOffered"
    offer_id: ItemId
    site_id: SiteId
    capability: Capability
    qualifications: list[Qualification] = Field(default_factory=list, max_length=50)
    hours: Quantity = Field(description="Machine hours offered in the window.")
    available_from: Timestamp
    available_until: Timestamp

    @model_validator(mode="after")
    def _window(self) -> CapacityOffered:
        if self.available_until <= self.available_from:
            raise ValueError("available_until must be after available_from")
        return self


class NeedReported(Envelope):
    """An explicit need: the partner will run short of a material."""

    type: Literal["NeedReported"] = "NeedReported"
    need_id: ItemId
    site_id: SiteId
    material_id: MaterialId
    unit: Unit
    quantity: Quantity = Field(description="Quantity needed; 0 withdraws the need.")
    needed_by: Day
    criticality: Criticality


class CapacityNeeded(Envelope):
    """Production the partner cannot do itself: hours of a capability it needs from others."""

    type: Literal["CapacityNeeded"] = "CapacityNeeded"
    need_id: ItemId
    site_id: SiteId
    capability: Capability
    required_qualifications: list[Qualification] = Field(default_factory=list, max_length=50)
    hours: Quantity = Field(description="Machine hours needed; 0 withdraws the need.")
    needed_by: Day
    criticality: Criticality


class PurchaseDemandReported(Envelope):
    """How much of a material the partner wants to buy through its joint purchasing pool.

    Quantities only: prices are never sent by partners (they exist only as the pool's
    supplier quotes, entered by coordinators)."""

    type: Literal["PurchaseDemandReported"] = "PurchaseDemandReported"
    material_id: MaterialId
    unit: Unit
    quantity: Quantity = Field(description="Quantity to buy; 0 withdraws the demand.")


class OrderAcknowledged(Envelope):
    """A partner's answer to an order it received from a protocol run."""

    type: Literal["OrderAcknowledged"] = "OrderAcknowledged"
    order_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,95}$")]
    accepted: bool
    reason: Annotated[str, Field(max_length=500)] | None = None


PartnerEvent = Annotated[
    StockReported
    | CapacityOffered
    | NeedReported
    | CapacityNeeded
    | PurchaseDemandReported
    | OrderAcknowledged,
    Field(discriminator="type"),
]

PARTNER_EVENT_TYPES: tuple[type[Envelope], ...] = (
    StockReported,
    CapacityOffered,
    NeedReported,
    CapacityNeeded,
    PurchaseDemandReported,
    OrderAcknowledged,
)

partner_event_adapter: TypeAdapter[PartnerEvent] = TypeAdapter(PartnerEvent)


def parse_partner_event(raw: bytes | str) -> PartnerEvent:
    """Validate one partner event from JSON; raises ``pydantic.ValidationError``."""
    return partner_event_adapter.validate_json(raw)
