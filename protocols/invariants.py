"""Invariants checked on every decision, independently of how it was solved.

Each check returns human-readable violations (empty list: all good). Names
match the constraint families so a failure points at the rule that broke.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocols import capacity, reallocation
from protocols.decisions import Decision
from protocols.transport import Sink
from schemas.protocol import CapacityParameters, ReallocationParameters, Scope
from schemas.scenario import Scenario

TOL = 1e-6


def _tol(value: float) -> float:
    return TOL * max(1.0, abs(value))


@dataclass
class OrderSums:
    """What the decision's orders move, summed in ONE pass (shared by the checks)."""

    given: dict[tuple[str, str, str], float]  # (partner, site, material) -> quantity
    received: dict[str, float]  # need -> quantity or hours
    serves: dict[tuple[str, str, str], int]  # donor -> lowest priority (highest tier) served

    @classmethod
    def of(cls, decision: Decision) -> OrderSums:
        tier = {f.need_id: f.tier for f in decision.fulfilment}
        given: dict[tuple[str, str, str], float] = defaultdict(float)
        received: dict[str, float] = defaultdict(float)
        serves: dict[tuple[str, str, str], int] = {}
        for t in decision.transfers:
            key = (t.from_partner, t.from_site, t.material_id)
            given[key] += t.quantity
            received[t.need_id] += t.quantity
            served = tier.get(t.need_id)  # unknown needs: reported by check_conservation
            if served is not None and served > serves.get(key, 0):
                serves[key] = served
        for a in decision.capacity_assignments:
            received[a.need_id] += a.hours
        return cls(given, received, serves)


def check_donors(
    scenario: Scenario, decision: Decision, sums: OrderSums | None = None
) -> list[str]:
    """supply: no donor below safety stock, none above its agreed share of surplus."""
    given = (sums or OrderSums.of(decision)).given
    if not given:
        return []
    positions = {(p.partner_id, p.site_id, p.material_id): p for p in scenario.positions}
    shares = reallocation.ShareTable(scenario)
    keys = list(given)  # violations are reported in key order below
    known = [positions.get(key) for key in keys]
    qty = np.array([given[key] for key in keys])
    on_hand = np.array([p.on_hand if p is not None else 0.0 for p in known])
    safety = np.array([p.safety_stock if p is not None else 0.0 for p in known])
    share = np.array([shares.share(key[0], key[2]) for key in keys])
    cap = share * np.maximum(0.0, on_hand - safety)
    over_share = qty > cap + TOL * np.maximum(1.0, np.abs(cap))
    below_safety = on_hand - qty < safety - TOL * np.maximum(1.0, np.abs(safety))
    missing = np.array([p is None for p in known])
    problems = []
    bad = np.nonzero(missing | over_share | below_safety)[0].tolist()
    for k in sorted(bad, key=keys.__getitem__):
        key, amount = keys[k], float(qty[k])
        if missing[k]:
            problems.append(f"supply: {key} gives {amount:g} without a stock position")
            continue
        if over_share[k]:
            problems.append(
                f"supply: {'/'.join(key)} gives {amount:g} > agreed share {float(cap[k]):g}"
            )
        if below_safety[k]:
            problems.append(f"supply: {'/'.join(key)} would fall below safety stock")
    return problems


def check_receivers(decision: Decision) -> list[str]:
    """demand: nobody receives more than its need."""
    return [
        f"demand: need {f.need_id} gets {f.fulfilled:g} > {f.requested:g}"
        for f in decision.fulfilment
        if f.fulfilled > f.requested + _tol(f.requested)
    ]


def check_conservation(decision: Decision, sums: OrderSums | None = None) -> list[str]:
    """What leaves donors arrives at needs, need by need and in total."""
    received = (sums or OrderSums.of(decision)).received
    problems = []
    if not decision.purchase_shares:
        fills = decision.fulfilment
        got = np.array([received.get(f.need_id, 0.0) for f in fills], dtype=np.float64)
        fulfilled = np.array([f.fulfilled for f in fills], dtype=np.float64)
        off = np.abs(got - fulfilled) > TOL * np.maximum(1.0, np.abs(fulfilled))
        for k in np.nonzero(off)[0].tolist():
            f = fills[k]
            problems.append(
                f"conservation: need {f.need_id} fulfilled {f.fulfilled:g} "
                f"but orders deliver {got[k]:g}"
            )
    known = {f.need_id for f in decision.fulfilment}
    problems += [f"conservation: orders for unknown need {n}" for n in received if n not in known]
    return problems


def check_tier_priority(
    scenario: Scenario,
    params: ReallocationParameters,
    scope: Scope,
    decision: Decision,
    material_problems: Sequence[reallocation.MaterialProblem] | None = None,
    sums: OrderSums | None = None,
) -> list[str]:
    """tier_priority: no unit could move to an unmet higher-tier need along one lane.

    Checks two local exchanges: a donor with spare capacity and a lane to an
    unmet need (more could be delivered), and a donor serving a lower tier with
    a lane to an unmet higher-tier need (it should have served the higher tier).
    Global optimality is checked against an independent LP in the tests.
    ``material_problems``: the run's material problems (rebuilt from the scenario if
    omitted). Linear in lanes + transfers (numpy over the lanes of all materials at once).
    """
    if params.min_fill or params.fairness or params.whole_units or params.pack_sizes:
        return []  # extra hard rules or fairness can legitimately block local exchanges
    if params.min_shipments:
        return []
    if material_problems is None:
        material_problems = reallocation.build_problems(scenario, params, scope)
    sums = sums or OrderSums.of(decision)
    fulfilled = {f.need_id: f for f in decision.fulfilment}
    # Sources and sinks of every material in one numbering (offsets per material).
    owners: list[tuple[reallocation.MaterialProblem, int]] = []  # per source: (problem, local)
    src_parts, snk_parts, capacity_parts = [], [], []
    sinks: list[tuple[reallocation.MaterialProblem, Sink]] = []
    out: list[float] = []
    serves: list[int] = []  # lowest priority (highest tier number) served by each source
    n_src = n_snk = 0
    for mp in material_problems:
        p = mp.problem
        for i, s in enumerate(p.sources):
            key = (s.partner_id, s.site_id, mp.material_id)
            out.append(sums.given.get(key, 0.0))
            serves.append(sums.serves.get(key, 0))
            owners.append((mp, i))
        src_parts.append(p.arc_source + n_src)
        snk_parts.append(p.arc_sink + n_snk)
        capacity_parts.append(p.capacity)
        sinks.extend((mp, s) for s in p.sinks)
        n_src += len(p.sources)
        n_snk += len(p.sinks)
    if not sinks:
        return []
    arc_src, arc_snk = np.concatenate(src_parts), np.concatenate(snk_parts)
    capacity = np.concatenate(capacity_parts)
    spare = capacity - np.array(out)
    spare_tol = TOL * np.maximum(1.0, np.abs(capacity))
    serves_tier = np.array(serves, dtype=np.int64)
    sink_tier = np.array([s.tier for _, s in sinks], dtype=np.int64)
    unmet = np.array(
        [
            (g := fulfilled.get(s.need_id)) is not None and g.unmet > _tol(g.requested)
            for _, s in sinks
        ],
        dtype=np.bool_,
    )
    arcs = np.nonzero(unmet[arc_snk])[0]
    src, snk = arc_src[arcs], arc_snk[arcs]
    has_spare = spare[src] > spare_tol[src]
    bad = has_spare | (serves_tier[src] > sink_tier[snk])
    violations = []
    for i, j, spare_lane in zip(
        src[bad].tolist(), snk[bad].tolist(), has_spare[bad].tolist(), strict=True
    ):
        (mp, local), (_, need) = owners[i], sinks[j]
        donor = mp.problem.sources[local]
        if spare_lane:
            violations.append(
                f"tier_priority: {mp.material_id} donor {donor.ref} has {spare[i]:g} spare "
                f"and a lane to unmet need {need.need_id}"
            )
        else:
            violations.append(
                f"tier_priority: {mp.material_id} donor {donor.ref} serves tier "
                f"{serves_tier[i]} while tier {need.tier} need {need.need_id} is unmet"
            )
    return violations


def check_capacity(scenario: Scenario, params: CapacityParameters, decision: Decision) -> list[str]:
    """supply/lanes for capacity: within offered hours, only qualified lending providers
    whose offer starts by the need's date."""
    offers = {o.offer_id: o for o in scenario.capacity_offers}
    needs = {n.need_id: n for n in scenario.capacity_needs}
    used: dict[str, float] = defaultdict(float)
    problems = []
    for a in decision.capacity_assignments:
        used[a.offer_id] += a.hours
        offer, need = offers[a.offer_id], needs[a.need_id]
        if not set(need.required_qualifications) <= set(offer.qualifications):
            problems.append(f"lanes: offer {a.offer_id} lacks qualifications for {a.need_id}")
        if not capacity.lends(scenario, offer) or offer.capability != need.capability:
            problems.append(f"lanes: offer {a.offer_id} may not serve {a.need_id}")
        if not capacity.in_time(offer, need):
            problems.append(
                f"lanes: offer {a.offer_id} starts {offer.available_from} after {a.need_id}"
                f" is due ({need.needed_by})"
            )
    for offer_id, hours in sorted(used.items()):
        if hours > offers[offer_id].hours + _tol(offers[offer_id].hours):
            problems.append(f"supply: offer {offer_id} assigned {hours:g} h > offered")
    return problems


def check_purchasing(decision: Decision) -> list[str]:
    """Nobody pays more than alone; everybody gets at least its demand."""
    problems = []
    for s in decision.purchase_shares:
        if s.cost_pooled > s.cost_alone + _tol(s.cost_alone):
            problems.append(
                f"no_worse_than_alone: {s.partner_id} pays {s.cost_pooled:g}"
                f" > alone {s.cost_alone:g}"
            )
    for f in decision.fulfilment:
        if f.fulfilled < f.requested - _tol(f.requested) and decision.purchase_shares:
            problems.append(f"cover_demand: {f.partner_id} gets less than its demand")
    return problems


def check_decision(
    scenario: Scenario,
    params: ReallocationParameters | CapacityParameters | object,
    scope: Scope,
    decision: Decision,
    material_problems: Sequence[reallocation.MaterialProblem] | None = None,
) -> list[str]:
    """Every invariant that applies to the decision's kind (empty list: all good).

    ``material_problems``: the run's material problems, reused by the tier-priority check
    instead of rebuilding them (reallocation only).
    """
    sums = OrderSums.of(decision)
    problems = check_receivers(decision) + check_conservation(decision, sums)
    if isinstance(params, ReallocationParameters):
        problems += check_donors(scenario, decision, sums)
        if decision.status.proven_optimal:
            problems += check_tier_priority(
                scenario, params, scope, decision, material_problems, sums
            )
    elif isinstance(params, CapacityParameters):
        problems += check_capacity(scenario, params, decision)
    else:
        problems += check_purchasing(decision)
    return problems


def unmet_by_tier(decision: Decision) -> dict[int, float]:
    result: dict[int, float] = defaultdict(float)
    for f in decision.fulfilment:
        result[f.tier] += f.unmet
    return {t: float(np.round(v, 6)) for t, v in sorted(result.items())}
