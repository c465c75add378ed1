"""Scenario files: a snapshot of alliance state for drills and what-if runs.

The same model is the input snapshot of live runs: the coordinator builds a
:class:`Scenario` from the ledger's state and hands it to ``protocols.solve``.

Prices appear only in :class:`Purchasing` (supplier price tiers of a purchasing
pool, seen by the coordinator only); positions, needs and capacity carry none.
Lane costs are alliance transport cost factors, not prices of any partner.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from schemas.agreements import (
    Agreements,
    CapacityLendingAgreement,
    PoolParticipation,
    SurplusSharingAgreement,
)
from schemas.alliance import Partner, Site
from schemas.common import (
    Capability,
    Contract,
    Criticality,
    ItemId,
    MaterialId,
    PartnerId,
    Qualification,
    Quantity,
    SiteId,
    Unit,
)
from schemas.config_files import UnreadableFile, load_json, load_yaml, read_document
from schemas.errors import field_errors

Share = Annotated[float, Field(ge=0, le=1)]


class ScenarioMaterial(Contract):
    id: MaterialId
    name: str = Field(default="", max_length=120)
    unit: Unit = Unit.PIECES
    pack_size: float | None = Field(
        default=None, gt=0, description="Transfers are whole packs of this size (MILP option)."
    )
    min_shipment: float | None = Field(
        default=None, gt=0, description="A transfer is either 0 or at least this quantity."
    )


class ScenarioPosition(Contract):
    """Stock of one material at one partner site."""

    partner_id: PartnerId
    site_id: SiteId
    material_id: MaterialId
    on_hand: Quantity
    safety_stock: Quantity
    daily_consumption: Quantity = 0.0


class ScenarioNeed(Contract):
    """An explicit need of a partner site for a material."""

    need_id: ItemId
    partner_id: PartnerId
    site_id: SiteId
    material_id: MaterialId
    quantity: Quantity
    needed_by: date
    criticality: Criticality | None = Field(
        default=None, description="Defaults to the partner's criticality."
    )


class CapacityOffer(Contract):
    offer_id: ItemId
    partner_id: PartnerId
    site_id: SiteId
    capability: Capability
    qualifications: list[Qualification] = Field(default_factory=list)
    hours: Quantity
    available_from: date | None = Field(
        default=None,
        description=(
            "First day the offered capacity can be used: the offer serves only needs due on "
            "or after it (none: available now)."
        ),
    )

    @model_serializer(mode="wrap")
    def _omit_open_start(self, handler: SerializerFunctionWrapHandler) -> Any:
        """No ``available_from`` key when unset: snapshots recorded before the field existed
        keep their hash (``verbund replay``)."""
        data = handler(self)
        if self.available_from is None and isinstance(data, dict):
            data.pop("available_from", None)
        return data


class CapacityNeed(Contract):
    need_id: ItemId
    partner_id: PartnerId
    site_id: SiteId
    capability: Capability
    required_qualifications: list[Qualification] = Field(default_factory=list)
    hours: Quantity
    needed_by: date
    criticality: Criticality | None = None


class PriceTier(Contract):
    """From ``min_quantity`` units per order on, every unit costs ``unit_price``."""

    min_quantity: Quantity
    unit_price: float = Field(gt=0, le=1e9)


class SupplierOffer(Contract):
    supplier_id: ItemId
    material_id: MaterialId
    tiers: list[PriceTier] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _increasing(self) -> SupplierOffer:
        check_tiers(self.tiers)
        return self


def check_tiers(tiers: list[PriceTier]) -> None:
    """Tiers must start at distinct, strictly increasing minimum quantities."""
    mins = [t.min_quantity for t in tiers]
    if mins != sorted(mins) or len(set(mins)) != len(mins):
        raise ValueError("tiers must have strictly increasing min_quantity")


class PurchaseDemand(Contract):
    partner_id: PartnerId
    material_id: MaterialId
    quantity: Quantity


class Purchasing(Contract):
    """Purchasing pool data; the only place where prices exist."""

    suppliers: list[SupplierOffer] = Field(default_factory=list)
    demands: list[PurchaseDemand] = Field(default_factory=list)


class LaneCost(Contract):
    """Transport cost per unit between two sites (overrides the distance)."""

    from_partner: PartnerId
    from_site: SiteId
    to_partner: PartnerId
    to_site: SiteId
    cost_per_unit: float = Field(ge=0, le=1e9)


class Scenario(Contract):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    as_of: date
    partners: list[Partner] = Field(min_length=1)
    materials: list[ScenarioMaterial] = Field(default_factory=list)
    positions: list[ScenarioPosition] = Field(default_factory=list)
    needs: list[ScenarioNeed] = Field(default_factory=list)
    agreements: Agreements = Field(default_factory=Agreements)
    capacity_offers: list[CapacityOffer] = Field(default_factory=list)
    capacity_needs: list[CapacityNeed] = Field(default_factory=list)
    purchasing: Purchasing = Field(default_factory=Purchasing)
    lane_costs: list[LaneCost] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems: list[str] = []
        _unique("partners", [p.id for p in self.partners], problems)
        _unique("materials", [m.id for m in self.materials], problems)
        _unique("needs", [n.need_id for n in self.needs], problems)
        _unique("capacity_offers", [o.offer_id for o in self.capacity_offers], problems)
        _unique("capacity_needs", [n.need_id for n in self.capacity_needs], problems)
        _unique(
            "positions",
            [f"{p.partner_id}/{p.site_id}/{p.material_id}" for p in self.positions],
            problems,
        )
        sites = {(p.id, s.id) for p in self.partners for s in p.sites}
        partners = {p.id for p in self.partners}
        materials = {m.id for m in self.materials}
        site_refs: list[tuple[str, str, str]] = (
            [(f"positions[{i}]", x.partner_id, x.site_id) for i, x in enumerate(self.positions)]
            + [(f"needs[{i}]", x.partner_id, x.site_id) for i, x in enumerate(self.needs)]
            + [
                (f"capacity_offers[{i}]", x.partner_id, x.site_id)
                for i, x in enumerate(self.capacity_offers)
            ]
            + [
                (f"capacity_needs[{i}]", x.partner_id, x.site_id)
                for i, x in enumerate(self.capacity_needs)
            ]
            + [
                (f"lane_costs[{i}]", x.from_partner, x.from_site)
                for i, x in enumerate(self.lane_costs)
            ]
            + [(f"lane_costs[{i}]", x.to_partner, x.to_site) for i, x in enumerate(self.lane_costs)]
        )
        for where, partner, site in site_refs:
            if (partner, site) not in sites:
                problems.append(f"{where}: unknown partner site {partner}/{site}")
        material_refs: list[tuple[str, str]] = (
            [(f"positions[{i}]", x.material_id) for i, x in enumerate(self.positions)]
            + [(f"needs[{i}]", x.material_id) for i, x in enumerate(self.needs)]
            + [
                (f"purchasing.suppliers[{i}]", x.material_id)
                for i, x in enumerate(self.purchasing.suppliers)
            ]
            + [
                (f"purchasing.demands[{i}]", x.material_id)
                for i, x in enumerate(self.purchasing.demands)
            ]
        )
        for where, material in material_refs:
            if material not in materials:
                problems.append(f"{where}: unknown material {material}")
        agreement_partners = (
            [("agreements.surplus_sharing", a.partner_id) for a in self.agreements.surplus_sharing]
            + [
                ("agreements.capacity_lending", a.partner_id)
                for a in self.agreements.capacity_lending
            ]
            + [
                ("agreements.purchasing_pools", a.partner_id)
                for a in self.agreements.purchasing_pools
            ]
            + [("purchasing.demands", d.partner_id) for d in self.purchasing.demands]
        )
        for where, partner in agreement_partners:
            if partner not in partners:
                problems.append(f"{where}: unknown partner {partner}")
        if problems:
            raise ValueError("; ".join(problems[:20]))
        return self

    @cached_property
    def partner_by_id(self) -> dict[str, Partner]:
        return {p.id: p for p in self.partners}

    @cached_property
    def material_by_id(self) -> dict[str, ScenarioMaterial]:
        return {m.id: m for m in self.materials}

    def site(self, partner_id: str, site_id: str) -> Site:
        for site in self.partner_by_id[partner_id].sites:
            if site.id == site_id:
                return site
        raise KeyError(f"{partner_id}/{site_id}")

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (sorted keys): the basis of the snapshot hash.

        The bytes of ``orjson.dumps(model_dump(mode="json"))`` with sorted keys
        (:meth:`reference_json`, tested equal). The bulk of a snapshot, its positions
        and needs, is serialised by orjson straight from the models' field dicts
        (strings, floats, dates and a string enum, written as pydantic's JSON mode
        writes them; these models have no custom serialisers, checked at import): half
        the time of ``model_dump``, and a live run hashes its snapshot on every solve.
        """
        data = self.model_dump(mode="json", exclude=_FLAT_LISTS)
        for name in sorted(_FLAT_LISTS):
            data[name] = list(map(vars, getattr(self, name)))
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def reference_json(self) -> bytes:
        """The reference form of :meth:`to_json_bytes` (slower; used by the tests)."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


#: Lists of models without nested models or custom serialisers, written from their
#: field dicts by :meth:`Scenario.to_json_bytes`.
_FLAT_LISTS: set[str] = {"positions", "needs"}


def _check_flat(model: type[BaseModel]) -> None:
    decorators = model.__pydantic_decorators__
    if decorators.model_serializers or decorators.field_serializers:
        raise TypeError(f"{model.__name__} has a custom serialiser: not a flat model")
    for name, info in model.model_fields.items():
        if info.alias or info.serialization_alias:
            raise TypeError(f"{model.__name__}.{name} has an alias: not a flat model")


_check_flat(ScenarioPosition)
_check_flat(ScenarioNeed)


def _unique(what: str, ids: list[str], problems: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            problems.append(f"{what}: duplicate id {item}")
        seen.add(item)


class ScenarioFileError(ValueError):
    """A scenario file could not be read; the message names the file and the field."""


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data, strict=False)
    except ValidationError as exc:
        raise ScenarioFileError(f"{source}: " + "; ".join(field_errors(exc))) from exc


def load_scenario(path: Path) -> Scenario:
    """Load a YAML or JSON scenario file."""
    try:
        data = read_document(path, load_json if path.suffix == ".json" else load_yaml)
    except UnreadableFile as exc:
        raise ScenarioFileError(f"{path}: cannot read scenario file: {exc}") from exc
    return parse_scenario(data, str(path))


__all__ = [
    "Agreements",
    "CapacityLendingAgreement",
    "CapacityNeed",
    "CapacityOffer",
    "LaneCost",
    "PoolParticipation",
    "PriceTier",
    "PurchaseDemand",
    "Purchasing",
    "Scenario",
    "ScenarioFileError",
    "ScenarioMaterial",
    "ScenarioNeed",
    "ScenarioPosition",
    "SupplierOffer",
    "SurplusSharingAgreement",
    "load_scenario",
    "parse_scenario",
]
