"""Joint purchasing pool: pooled demand buys at the best reachable volume-discount tier.

Per material: the participants (partners with a pool agreement for it) pool
their demand ``D``. Each supplier offer has all-units tiers: from ``min_quantity``
on, every unit costs ``unit_price``. The MILP picks one (supplier, tier) and an
order quantity ``q >= D`` (``q >= min_quantity`` of the tier) at least total cost.
Buying more than ``D`` is allowed when reaching a tier makes it cheaper; the
extra units are shared in proportion to demand.

Alone cost of a participant: the least it could pay buying its own demand ``d``
by itself from the same offers, ``min over (s, t) of price_t * max(d, min_t)``.
Cost split: pooled cost in proportion to alone cost. Since the pool may pick the
offer that the cheapest-priced participant would pick alone, pooled cost <= sum
of alone costs, hence every share <= its alone cost: nobody pays more than alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulp

from protocols.decisions import NeedFulfilment, PurchaseShare, order_id
from protocols.pulp_model import constraint_name
from protocols.solvers import SolverChoice, make_pulp_solver, pulp_status
from protocols.status import SolveStatus
from schemas.protocol import Scope
from schemas.scenario import PriceTier, Scenario, SupplierOffer

ROUND = 6


@dataclass(frozen=True)
class PoolProblem:
    material_id: str
    demands: tuple[tuple[str, float], ...]  # (partner, quantity), partner id order
    offers: tuple[SupplierOffer, ...]

    @property
    def total(self) -> float:
        return sum(q for _, q in self.demands)


@dataclass
class PoolSolution:
    material_id: str
    status: SolveStatus
    supplier_id: str = ""
    tier: PriceTier | None = None
    quantity: float = 0.0
    cost: float = 0.0
    explanation: str = ""
    conflicting: tuple[str, ...] = ()
    shares: list[PurchaseShare] = field(default_factory=list)


def participants(scenario: Scenario, material_id: str) -> set[str]:
    return {
        p.partner_id for p in scenario.agreements.purchasing_pools if material_id in p.materials
    }


def build_problems(scenario: Scenario, scope: Scope) -> list[PoolProblem]:
    materials = sorted({d.material_id for d in scenario.purchasing.demands})
    problems = []
    for material_id in materials:
        if scope.materials and material_id not in scope.materials:
            continue
        members = participants(scenario, material_id)
        demand: dict[str, float] = {}
        for d in scenario.purchasing.demands:
            if d.material_id == material_id and d.partner_id in members and d.quantity > 0:
                demand[d.partner_id] = demand.get(d.partner_id, 0.0) + d.quantity
        if not demand:
            continue
        offers = tuple(o for o in scenario.purchasing.suppliers if o.material_id == material_id)
        problems.append(PoolProblem(material_id, tuple(sorted(demand.items())), offers))
    return problems


def alone_cost(quantity: float, offers: tuple[SupplierOffer, ...]) -> float:
    """Least cost of buying ``quantity`` alone (may buy up to a tier minimum)."""
    return min(
        (t.unit_price * max(quantity, t.min_quantity) for o in offers for t in o.tiers),
        default=float("inf"),
    )


@dataclass
class _Model:
    lp: pulp.LpProblem
    q: dict[tuple[int, int], pulp.LpVariable]
    y: dict[tuple[int, int], pulp.LpVariable]


def define_variables(problem: PoolProblem) -> _Model:
    lp = pulp.LpProblem(f"pool_{problem.material_id}", pulp.LpMinimize)
    tag = constraint_name("x", problem.material_id, "")
    q, y = {}, {}
    for s, offer in enumerate(problem.offers):
        for t, _ in enumerate(offer.tiers):
            q[s, t] = pulp.LpVariable(f"q_{tag}_{s}_{t}", lowBound=0)
            y[s, t] = pulp.LpVariable(f"y_{tag}_{s}_{t}", cat=pulp.LpBinary)
    lp.setObjective(
        pulp.LpAffineExpression([(q[s, t], problem.offers[s].tiers[t].unit_price) for (s, t) in q])
    )
    return _Model(lp, q, y)


def define_cover_demand(model: _Model, problem: PoolProblem) -> None:
    """The pool orders at least the pooled demand."""
    expr = pulp.LpAffineExpression([(v, 1.0) for v in model.q.values()])
    model.lp += expr >= problem.total, constraint_name("cover_demand", problem.material_id, 0)


def define_single_offer(model: _Model, problem: PoolProblem) -> None:
    """The pool buys from one supplier at one tier."""
    expr = pulp.LpAffineExpression([(v, 1.0) for v in model.y.values()])
    model.lp += expr <= 1, constraint_name("single_offer", problem.material_id, 0)


def define_tier_minimum(model: _Model, problem: PoolProblem) -> None:
    """A tier's price applies only from its minimum quantity on; no order without choosing it."""
    big = max([problem.total] + [t.min_quantity for o in problem.offers for t in o.tiers]) + 1.0
    for (s, t), q in model.q.items():
        tier = problem.offers[s].tiers[t]
        y = model.y[s, t]
        model.lp += (
            q - tier.min_quantity * y >= 0,
            constraint_name("tier_minimum", problem.material_id, f"{s}_{t}"),
        )
        model.lp += q - big * y <= 0, constraint_name("tier_link", problem.material_id, f"{s}_{t}")


def solve_pool(problem: PoolProblem, choice: SolverChoice) -> PoolSolution:
    sol = PoolSolution(problem.material_id, SolveStatus.OPTIMAL)
    if not problem.offers:
        sol.status = SolveStatus.INFEASIBLE
        sol.conflicting = ("cover_demand", "single_offer")
        sol.explanation = (
            f"{problem.material_id}: the pool must buy {problem.total:g} units, "
            "but no supplier offers this material to the pool"
        )
        return sol
    model = define_variables(problem)
    define_cover_demand(model, problem)
    define_single_offer(model, problem)
    define_tier_minimum(model, problem)
    try:
        model.lp.solve(make_pulp_solver(choice))
        status = pulp_status(model.lp)
    except pulp.PulpSolverError as exc:
        sol.status = SolveStatus.ERROR
        sol.explanation = f"{problem.material_id}: solver error: {exc}"
        return sol
    sol.status = status
    if not status.has_solution:
        sol.explanation = f"{problem.material_id}: solver status {status.value}"
        return sol
    chosen = [(k, v.value() or 0.0) for k, v in model.q.items() if (model.y[k].value() or 0) > 0.5]
    if not chosen:
        sol.status = SolveStatus.ERROR
        sol.explanation = f"{problem.material_id}: solver returned no offer"
        return sol
    (s, t), qty = chosen[0]
    offer, tier = problem.offers[s], problem.offers[s].tiers[t]
    sol.supplier_id, sol.tier = offer.supplier_id, tier
    sol.quantity = max(qty, problem.total, tier.min_quantity)
    sol.cost = tier.unit_price * sol.quantity
    if status is SolveStatus.TIME_LIMIT:
        sol.explanation = f"{problem.material_id}: time limit; offer not proven best"
    sol.shares = split_cost(problem, sol)
    return sol


def split_cost(problem: PoolProblem, sol: PoolSolution) -> list[PurchaseShare]:
    """Pooled cost in proportion to each participant's alone cost; extra units by demand."""
    assert sol.tier is not None
    alone = {p: alone_cost(q, problem.offers) for p, q in problem.demands}
    total_alone = sum(alone.values())
    extra = sol.quantity - problem.total
    shares = []
    for partner, demand in problem.demands:
        pooled = sol.cost * alone[partner] / total_alone if total_alone > 0 else 0.0
        pooled = min(pooled, alone[partner])  # guard against float noise; never above alone
        shares.append(
            PurchaseShare(
                order_id=order_id("ps", problem.material_id, partner, sol.supplier_id),
                partner_id=partner,
                material_id=problem.material_id,
                supplier_id=sol.supplier_id,
                quantity=round(demand + extra * demand / problem.total, ROUND),
                unit_price_pooled=sol.tier.unit_price,
                cost_pooled=round(pooled, ROUND),
                cost_alone=round(alone[partner], ROUND),
                saving=round(alone[partner] - pooled, ROUND),
            )
        )
    return shares


def fulfilment(problem: PoolProblem, sol: PoolSolution) -> list[NeedFulfilment]:
    got = {s.partner_id: s.quantity for s in sol.shares}
    return [
        NeedFulfilment(
            need_id=f"purchase-{problem.material_id}-{partner}",
            partner_id=partner,
            item=problem.material_id,
            tier=3,
            requested=qty,
            fulfilled=min(qty, got.get(partner, 0.0)),
        )
        for partner, qty in problem.demands
    ]
