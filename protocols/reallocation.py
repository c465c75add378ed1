"""Material reallocation: surplus above safety stock moves to partners in need.

Build (scenario -> one transportation problem per material), solve (see
:mod:`protocols.dispatch`), assign (flows -> transfer orders and fulfilment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.decisions import NeedFulfilment, TransferOrder, order_id
from protocols.geo import haversine_matrix
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
    scenario: Scenario, sources: list[Source], sinks: list[Sink]
) -> tuple[np.ndarray, np.ndarray]:
    """(distance km, unit cost) for every source x sink; the lane table overrides distance."""
    src_sites = [scenario.site(s.partner_id, s.site_id) for s in sources]
    snk_sites = [scenario.site(s.partner_id, s.site_id) for s in sinks]
    dist = haversine_matrix(
        np.array([s.latitude for s in src_sites]),
        np.array([s.longitude for s in src_sites]),
        np.array([s.latitude for s in snk_sites]),
        np.array([s.longitude for s in snk_sites]),
    )
    cost = dist.copy()
    if scenario.lane_costs:
        table = {
            (lc.from_partner, lc.from_site, lc.to_partner, lc.to_site): lc.cost_per_unit
            for lc in scenario.lane_costs
        }
        for i, src in enumerate(sources):
            for j, snk in enumerate(sinks):
                key = (src.partner_id, src.site_id, snk.partner_id, snk.site_id)
                if key in table:
                    cost[i, j] = table[key]
    return dist, cost


@dataclass(frozen=True)
class MaterialProblem:
    material_id: str
    unit: str
    problem: TransportProblem
    distance: np.ndarray  # per arc


def build_problems(
    scenario: Scenario, params: ReallocationParameters, scope: Scope
) -> list[MaterialProblem]:
    """One transportation problem per material in scope, in material id order."""
    shares = ShareTable(scenario)
    positions_by_material: dict[str, list[Source]] = {}
    shortfalls: dict[str, list[Sink]] = {}
    for pos in scenario.positions:
        if not in_scope(scenario, scope, pos.partner_id):
            continue
        cap = shares.share(pos.partner_id, pos.material_id) * surplus(pos.on_hand, pos.safety_stock)
        if cap > 0:
            positions_by_material.setdefault(pos.material_id, []).append(
                Source(pos.partner_id, pos.site_id, cap, ref=f"{pos.partner_id}/{pos.site_id}")
            )
        if params.include_position_shortfalls and pos.on_hand < pos.safety_stock:
            partner = scenario.partner_by_id[pos.partner_id]
            shortfalls.setdefault(pos.material_id, []).append(
                Sink(
                    f"shortfall-{pos.partner_id}-{pos.site_id}-{pos.material_id}",
                    pos.partner_id,
                    pos.site_id,
                    pos.safety_stock - pos.on_hand,
                    partner.criticality.tier,
                    scenario.as_of,
                )
            )
    needs_by_material: dict[str, list[Sink]] = {}
    for need in scenario.needs:
        if need.quantity <= 0 or not in_scope(scenario, scope, need.partner_id):
            continue
        crit = need.criticality or scenario.partner_by_id[need.partner_id].criticality
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
    problems = []
    for material_id in scoped_materials(scenario, scope):
        material = scenario.material_by_id[material_id]
        sources = positions_by_material.get(material_id, [])
        sinks = needs_by_material.get(material_id, []) + shortfalls.get(material_id, [])
        if not sinks:
            continue
        step = None
        if params.pack_sizes and material.pack_size:
            step = material.pack_size
        elif params.whole_units or params.pack_sizes:
            step = 1.0
        options = TransportOptions(
            fairness=params.fairness,
            step=step,
            min_lot=material.min_shipment if params.min_shipments else None,
            min_fill=tuple(sorted((m.tier, m.fraction) for m in params.min_fill)),
        )
        if sources:
            dist, cost = lane_cost_matrix(scenario, sources, sinks)
            src_key = np.array([f"{s.partner_id}/{s.site_id}" for s in sources])
            snk_key = np.array([f"{s.partner_id}/{s.site_id}" for s in sinks])
            allowed = src_key[:, None] != snk_key[None, :]
            if params.max_distance_km is not None:
                allowed &= dist <= params.max_distance_km
        else:
            dist = cost = np.zeros((0, len(sinks)))
            allowed = np.zeros((0, len(sinks)), dtype=bool)
        arc_src, arc_snk, arc_cost = build_arcs(sources, sinks, cost, allowed)
        problem = TransportProblem(
            material_id,
            tuple(sources),
            tuple(sinks),
            arc_src,
            arc_snk,
            arc_cost,
            options,
            vocabulary(params, material.unit.value),
        )
        problems.append(
            MaterialProblem(material_id, material.unit.value, problem, dist[arc_src, arc_snk])
        )
    return problems


def assign(
    mp: MaterialProblem, solution: TransportSolution
) -> tuple[list[TransferOrder], list[NeedFulfilment]]:
    """Transfer orders and per-need fulfilment from a solution's flows.

    Built with ``model_construct``: every field comes from already validated
    scenario data or from float conversions here, and pydantic validation of
    ~20,000 orders would cost more than 100 ms at 200 x 100 (the invariants are
    checked on the decision afterwards).
    """
    p = mp.problem
    flows = clean_flows(solution.flows)
    orders = []
    for a in np.nonzero(flows > 0)[0].tolist():
        src = p.sources[int(p.arc_source[a])]
        snk = p.sinks[int(p.arc_sink[a])]
        qty = float(flows[a])
        orders.append(
            TransferOrder.model_construct(
                order_id=order_id("tr", mp.material_id, src.partner_id, src.site_id, snk.need_id),
                material_id=mp.material_id,
                unit=mp.unit,
                from_partner=src.partner_id,
                from_site=src.site_id,
                to_partner=snk.partner_id,
                to_site=snk.site_id,
                quantity=qty,
                due=snk.due,
                need_id=snk.need_id,
                distance_km=round(float(mp.distance[a]), 3),
                cost=round(qty * float(p.arc_cost[a]), ROUND),
            )
        )
    return orders, fulfilment_of(p, flows, mp.material_id)


def fulfilment_of(
    p: TransportProblem, flows: npt.NDArray[np.float64], item: str
) -> list[NeedFulfilment]:
    """Requested vs. delivered per need (sink) of a solved transport problem."""
    inflow = np.bincount(p.arc_sink, weights=flows, minlength=len(p.sinks))
    return [
        NeedFulfilment.model_construct(
            need_id=s.need_id,
            partner_id=s.partner_id,
            item=item,
            tier=s.tier,
            requested=s.demand,
            fulfilled=round(float(inflow[j]), ROUND),
        )
        for j, s in enumerate(p.sinks)
    ]
