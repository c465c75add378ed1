"""Capacity sharing: offered idle capacity is assigned to partners who cannot produce.

One transportation problem per capability: offers are sources (offered hours),
capacity needs are sinks (needed hours, tier); a lane exists only when the
provider lends that capability by agreement, holds every qualification the
need requires, offers it from a day no later than the need's date (and,
optionally, is close enough).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.decisions import CapacityAssignment, NeedFulfilment, order_id
from protocols.reallocation import (
    ROUND,
    clean_flows,
    fulfilment_of,
    in_scope,
    lane_cost_matrix,
)
from protocols.transport import (
    Sink,
    Source,
    TransportOptions,
    TransportProblem,
    TransportSolution,
    Vocabulary,
    build_arcs,
)
from schemas.protocol import CapacityParameters, Scope
from schemas.scenario import CapacityNeed, CapacityOffer, Scenario


def lends(scenario: Scenario, offer: CapacityOffer) -> bool:
    """Whether an agreement lets the partner lend this capability."""
    return any(
        a.partner_id == offer.partner_id
        and (a.capabilities is None or offer.capability in a.capabilities)
        for a in scenario.agreements.capacity_lending
    )


def in_time(offer: CapacityOffer, need: CapacityNeed) -> bool:
    """Whether the offer can be used by the need's date (its window starts no later)."""
    return offer.available_from is None or offer.available_from <= need.needed_by


def vocabulary(params: CapacityParameters) -> Vocabulary:
    lanes = (
        "only qualified providers (capability and every required qualification)"
        " whose capacity is available by the need's date"
    )
    if params.max_distance_km is not None:
        lanes += f" within {params.max_distance_km:g} km"
    return Vocabulary(
        supply="providers give at most the hours they offered",
        demand="no partner gets more hours than it needs",
        lanes=lanes,
        unit="h",
    )


@dataclass(frozen=True)
class CapabilityProblem:
    capability: str
    offers: tuple[CapacityOffer, ...]
    problem: TransportProblem


def build_problems(
    scenario: Scenario, params: CapacityParameters, scope: Scope
) -> list[CapabilityProblem]:
    capabilities = sorted({n.capability for n in scenario.capacity_needs})
    result = []
    for capability in capabilities:
        offers = [
            o
            for o in scenario.capacity_offers
            if o.capability == capability
            and o.hours > 0
            and lends(scenario, o)
            and in_scope(scenario, scope, o.partner_id)
        ]
        needs = [
            n
            for n in scenario.capacity_needs
            if n.capability == capability
            and n.hours > 0
            and in_scope(scenario, scope, n.partner_id)
        ]
        if not needs:
            continue
        sources = [Source(o.partner_id, o.site_id, o.hours, ref=o.offer_id) for o in offers]
        sinks = [
            Sink(
                n.need_id,
                n.partner_id,
                n.site_id,
                n.hours,
                (n.criticality or scenario.partner_by_id[n.partner_id].criticality).tier,
                n.needed_by,
            )
            for n in needs
        ]
        if sources:
            dist, cost = lane_cost_matrix(scenario, sources, sinks)
            allowed = np.array(
                [
                    [
                        o.partner_id != n.partner_id
                        and set(n.required_qualifications) <= set(o.qualifications)
                        and in_time(o, n)
                        for n in needs
                    ]
                    for o in offers
                ],
                dtype=bool,
            )
            if params.max_distance_km is not None:
                allowed &= dist <= params.max_distance_km
        else:
            cost = np.zeros((0, len(sinks)))
            allowed = np.zeros((0, len(sinks)), dtype=bool)
        arc_src, arc_snk, arc_cost = build_arcs(sources, sinks, cost, allowed)
        options = TransportOptions(
            min_fill=tuple(sorted((m.tier, m.fraction) for m in params.min_fill))
        )
        problem = TransportProblem(
            capability,
            tuple(sources),
            tuple(sinks),
            arc_src,
            arc_snk,
            arc_cost,
            options,
            vocabulary(params),
        )
        result.append(CapabilityProblem(capability, tuple(offers), problem))
    return result


def assign(
    cp: CapabilityProblem, solution: TransportSolution
) -> tuple[list[CapacityAssignment], list[NeedFulfilment]]:
    p = cp.problem
    flows = clean_flows(solution.flows)
    orders = []
    for a in np.nonzero(flows > 0)[0].tolist():
        offer = cp.offers[int(p.arc_source[a])]
        snk = p.sinks[int(p.arc_sink[a])]
        hours = float(flows[a])
        orders.append(
            CapacityAssignment(
                order_id=order_id("ca", offer.offer_id, snk.need_id),
                offer_id=offer.offer_id,
                capability=cp.capability,
                provider_partner=offer.partner_id,
                provider_site=offer.site_id,
                to_partner=snk.partner_id,
                to_site=snk.site_id,
                need_id=snk.need_id,
                hours=hours,
                due=snk.due,
                cost=round(hours * float(p.arc_cost[a]), ROUND),
            )
        )
    return orders, fulfilment_of(p, flows, cp.capability)
