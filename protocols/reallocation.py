"""Material reallocation: surplus above safety stock moves to partners in need.

Build (scenario -> one transportation problem per material), solve (see
:mod:`protocols.dispatch`), assign (flows -> transfer orders and fulfilment).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.decisions import NeedFulfilment, TransferOrder, order_id, trusted
from protocols.sites import SiteTable
from protocols.transport import (
    Sink,
    Source,
    TransportOptions,
    TransportProblem,
    TransportSolution,
    Vocabulary,
    build_arcs,
)
from schemas.protocol import ReallocationParameters, Scope
from schemas.scenario import Scenario

ROUND = 6
MIN_FLOW = 1e-5


def clean_flows(flows: np.ndarray) -> np.ndarray:
    """Round to 6 decimals and drop solver noise below ``MIN_FLOW``."""
    rounded = np.round(flows, ROUND)
    return np.where(rounded < MIN_FLOW, 0.0, rounded)


def in_scope(scenario: Scenario, scope: Scope, partner_id: str) -> bool:
    partner = scenario.partner_by_id[partner_id]
    if scope.sectors and partner.sector not in scope.sectors:
        return False
    return not (scope.regions and partner.region not in scope.regions)


def scoped_materials(scenario: Scenario, scope: Scope) -> list[str]:
    ids = sorted(m.id for m in scenario.materials)
    return [m for m in ids if not scope.materials or m in scope.materials]


class ShareTable:
    """Largest agreed surplus share per (partner, material), indexed once per scenario.

    Looking a share up is O(1); scanning every agreement per position would make
    model building quadratic (positions x agreements).
    """

    def __init__(self, scenario: Scenario) -> None:
        self._all: dict[str, float] = {}
        self._some: dict[tuple[str, str], float] = {}
        for a in scenario.agreements.surplus_sharing:
            if a.materials is None:
                self._all[a.partner_id] = max(self._all.get(a.partner_id, 0.0), a.share)
            else:
                for material_id in a.materials:
                    key = (a.partner_id, material_id)
                    self._some[key] = max(self._some.get(key, 0.0), a.share)

    def share(self, partner_id: str, material_id: str) -> float:
        return max(self._all.get(partner_id, 0.0), self._some.get((partner_id, material_id), 0.0))


def donor_share(scenario: Scenario, partner_id: str, material_id: str) -> float:
    """The largest share an agreement of the partner allows for the material (0 if none)."""
    shares = [
        a.share
        for a in scenario.agreements.surplus_sharing
        if a.partner_id == partner_id and (a.materials is None or material_id in a.materials)
    ]
    return max(shares, default=0.0)


def surplus(on_hand: float, safety_stock: float) -> float:
    return max(0.0, on_hand - safety_stock)


def donor_capacity(
    scenario: Scenario, partner_id: str, material_id: str, on_hand: float, safety_stock: float
) -> float:
    return donor_share(scenario, partner_id, material_id) * surplus(on_hand, safety_stock)


def vocabulary(params: ReallocationParameters, unit: str) -> Vocabulary:
    lanes = "transfers only between sites with an allowed lane"
    if params.max_distance_km is not None:
        lanes += f" (at most {params.max_distance_km:g} km apart)"
    return Vocabulary(
        supply="donors give at most their agreed share of stock above safety stock",
        demand="no receiver gets more than its need",
        lanes=lanes,
        unit=unit,
        lots="transfers in whole units or packs",
        min_shipment="minimum shipment size",
    )


def lane_cost_matrix(
    scenario: Scenario,
    sources: Sequence[Source],
    sinks: Sequence[Sink],
    sites: SiteTable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(distance km, unit cost) for every source x sink; the lane table overrides distance."""
    sites = sites or SiteTable(scenario)
    return sites.distance_and_cost(
        sites.of([(s.partner_id, s.site_id) for s in sources]),
        sites.of([(s.partner_id, s.site_id) for s in sinks]),
    )


@dataclass(frozen=True)
class MaterialProblem:
    material_id: str
    unit: str
    problem: TransportProblem
    distance: np.ndarray  # per arc


def partners_in_scope(scenario: Scenario, scope: Scope) -> set[str]:
    return {p.id for p in scenario.partners if in_scope(scenario, scope, p.id)}


def build_problems(
    scenario: Scenario, params: ReallocationParameters, scope: Scope
) -> list[MaterialProblem]:
    """One transportation problem per material in scope, in material id order.

    Linear in positions + needs + lanes: shares, sites, lane costs and the scope are
    indexed once per scenario, not looked up per position or per material.
    """
    shares = ShareTable(scenario)
    sites = SiteTable(scenario)
    scoped = partners_in_scope(scenario, scope)
    partner_by_id = scenario.partner_by_id
    sources_by_material: dict[str, list[Source]] = {}
    shortfalls: dict[str, list[Sink]] = {}
    for pos in scenario.positions:
        partner_id = pos.partner_id
        if partner_id not in scoped:
            continue
        if pos.on_hand > pos.safety_stock:
            cap = shares.share(partner_id, pos.material_id) * (pos.on_hand - pos.safety_stock)
            if cap > 0:
                sources_by_material.setdefault(pos.material_id, []).append(
                    Source(partner_id, pos.site_id, cap, ref=f"{partner_id}/{pos.site_id}")
                )
        elif params.include_position_shortfalls and pos.on_hand < pos.safety_stock:
            shortfalls.setdefault(pos.material_id, []).append(
                Sink(
                    f"shortfall-{partner_id}-{pos.site_id}-{pos.material_id}",
                    partner_id,
                    pos.site_id,
                    pos.safety_stock - pos.on_hand,
                    partner_by_id[partner_id].criticality.tier,
                    scenario.as_of,
                )
            )
    needs_by_material: dict[str, list[Sink]] = {}
    for need in scenario.needs:
        if need.quantity <= 0 or need.partner_id not in scoped:
            continue
        crit = need.criticality or partner_by_id[need.partner_id].criticality
        needs_by_material.setdefault(need.material_id, []).append(
            Sink(
                need.need_id,
                need.partner_id,
                need.site_id,
                need.quantity,
                crit.tier,
                need.needed_by,
            )
        )
    words = vocabulary(params, "")
    words_by_unit: dict[str, Vocabulary] = {}
    min_fill = tuple(sorted((m.tier, m.fraction) for m in params.min_fill))
    options_by_lots: dict[tuple[float | None, float | None], TransportOptions] = {}
    problems = []
    for material_id in scoped_materials(scenario, scope):
        sinks = needs_by_material.get(material_id, []) + shortfalls.get(material_id, [])
        if not sinks:
            continue
        material = scenario.material_by_id[material_id]
        sources = sources_by_material.get(material_id, [])
        step = None
        if params.pack_sizes and material.pack_size:
            step = material.pack_size
        elif params.whole_units or params.pack_sizes:
            step = 1.0
        min_lot = material.min_shipment if params.min_shipments else None
        options = options_by_lots.get((step, min_lot))
        if options is None:
            options = options_by_lots[step, min_lot] = TransportOptions(
                fairness=params.fairness, step=step, min_lot=min_lot, min_fill=min_fill
            )
        src_site = sites.of([(s.partner_id, s.site_id) for s in sources])
        snk_site = sites.of([(s.partner_id, s.site_id) for s in sinks])
        dist, cost = sites.distance_and_cost(src_site, snk_site)
        allowed = src_site[:, None] != snk_site[None, :]  # never to the same site
        if params.max_distance_km is not None:
            allowed &= dist <= params.max_distance_km
        arc_src, arc_snk, arc_cost = build_arcs(sources, sinks, cost, allowed)
        unit = material.unit.value
        if unit not in words_by_unit:
            words_by_unit[unit] = dataclasses.replace(words, unit=unit)
        problem = TransportProblem(
            material_id,
            tuple(sources),
            tuple(sinks),
            arc_src,
            arc_snk,
            arc_cost,
            options,
            words_by_unit[unit],
        )
        problems.append(MaterialProblem(material_id, unit, problem, dist[arc_src, arc_snk]))
    return problems


def assign(
    mp: MaterialProblem, solution: TransportSolution
) -> tuple[list[TransferOrder], list[NeedFulfilment]]:
    """Transfer orders and per-need fulfilment from a solution's flows.

    Built with :func:`protocols.decisions.trusted`: every field comes from already
    validated scenario data or from float conversions here, and pydantic validation
    of ~20,000 orders would cost more than 100 ms at 200 x 100 (the invariants are
    checked on the decision afterwards).
    """
    p = mp.problem
    flows = clean_flows(solution.flows)
    arcs = np.nonzero(flows > 0)[0]
    material_id, unit = mp.material_id, mp.unit
    sources, sinks = p.sources, p.sinks
    orders = []
    for i, j, qty, dist, unit_cost in zip(
        p.arc_source[arcs].tolist(),
        p.arc_sink[arcs].tolist(),
        flows[arcs].tolist(),
        mp.distance[arcs].tolist(),
        p.arc_cost[arcs].tolist(),
        strict=True,
    ):
        src, snk = sources[i], sinks[j]
        need_id = snk.need_id
        orders.append(
            trusted(
                TransferOrder,
                {
                    "order_id": order_id("tr", material_id, src.partner_id, src.site_id, need_id),
                    "material_id": material_id,
                    "unit": unit,
                    "from_partner": src.partner_id,
                    "from_site": src.site_id,
                    "to_partner": snk.partner_id,
                    "to_site": snk.site_id,
                    "quantity": qty,
                    "due": snk.due,
                    "need_id": need_id,
                    "distance_km": round(dist, 3),
                    "cost": round(qty * unit_cost, ROUND),
                },
            )
        )
    return orders, fulfilment_of(p, flows, material_id)


def fulfilment_of(
    p: TransportProblem, flows: npt.NDArray[np.float64], item: str
) -> list[NeedFulfilment]:
    """Requested vs. delivered per need (sink) of a solved transport problem."""
    inflow = np.bincount(p.arc_sink, weights=flows, minlength=len(p.sinks)).tolist()
    return [
        trusted(
            NeedFulfilment,
            {
                "need_id": s.need_id,
                "partner_id": s.partner_id,
                "item": item,
                "tier": s.tier,
                "requested": s.demand,
                "fulfilled": round(received, ROUND),
            },
        )
        for s, received in zip(p.sinks, inflow, strict=True)
    ]
