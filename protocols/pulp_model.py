"""PuLP model of a tiered transportation problem: one function per constraint family.

Constraint names are deterministic: ``<family>__<group>__<index>``. The
lexicographic objective (tiers strictly, optional max-min fairness within a
tier, then cost) is solved as a sequence of stages; each stage optimum is fixed
as a constraint (family ``tier_priority`` / ``fairness``) before the next one.

What is fixed is a certified value, not the solver's stage objective: the plan a
stage returns may deliver a little more to its tier than an exact plan can, through
rows violated within the solver's feasibility tolerance and any room the tiers
above leave (see :class:`_Certificate`). Stages used to fix the raw value minus a
1e-9 slack (``transport.stage_tolerance``, still used by the fast staged path): a
stage took the slack of the tiers above whenever supply was the binding
constraint, so with supply exactly covering tiers 1-2, tier 3 "reached" 1.5e-7
(the 5e-8 + 1e-7 slack of tiers 1-2). That noise was fixed as tier 3's requirement
and the cost LP was feasible only in a sliver where tiers 1-2 are short by their
slack, far below HiGHS' 1e-7 feasibility tolerance; its presolve declared the LP
infeasible (CBC solved it). Now:

- a certified value is at most what the previous stage's plan, made exact, reaches,
  so every stage LP has an exact feasible plan;
- it is never above the lexicographic optimum (the certificate counts every unit a
  plan holds back from the higher tiers), so every stage LP contains that optimum
  and no later tier can claim supply the higher tiers are owed;
- hence it is fixed without slack: a slack would only let the later stages and the
  cost LP take it from the higher tiers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pulp

from protocols.solvers import SolverChoice, make_pulp_solver, pulp_status
from protocols.status import SolveStatus
from protocols.transport import (
    TIER_WORDS,
    TransportProblem,
    TransportSolution,
)


def _tag(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", group)


def constraint_name(family: str, group: str, index: int | str) -> str:
    return f"{family}__{_tag(group)}__{index}"


@dataclass
class PulpModel:
    problem: TransportProblem
    lp: pulp.LpProblem
    x: list[pulp.LpVariable]
    families: dict[str, list[str]] = field(default_factory=dict)

    def add(self, family: str, name: str, constraint: pulp.LpConstraint) -> None:
        self.lp += constraint, name
        self.families.setdefault(family, []).append(name)


def _expr(pairs: list[tuple[pulp.LpVariable, float]]) -> pulp.LpAffineExpression:
    return pulp.LpAffineExpression(pairs)


def define_flow_variables(problem: TransportProblem, complete_lanes: bool = False) -> PulpModel:
    lp = pulp.LpProblem(f"transport_{_tag(problem.group)}", pulp.LpMaximize)
    x = [
        pulp.LpVariable(f"x__{_tag(problem.group)}__{a}", lowBound=0) for a in range(problem.n_arcs)
    ]
    return PulpModel(problem, lp, x)


def _arcs_by(indices: np.ndarray, n: int) -> list[list[int]]:
    by: list[list[int]] = [[] for _ in range(n)]
    for arc, node in enumerate(indices.tolist()):
        by[node].append(arc)
    return by


def define_supply(model: PulpModel) -> None:
    """A source gives at most its capacity (donor: agreed share of surplus above safety stock)."""
    p = model.problem
    for i, arcs in enumerate(_arcs_by(p.arc_source, len(p.sources))):
        if arcs:
            expr = _expr([(model.x[a], 1.0) for a in arcs])
            model.add(
                "supply", constraint_name("supply", p.group, i), expr <= p.sources[i].capacity
            )


def define_demand(model: PulpModel) -> None:
    """A sink receives at most its demand (a receiver never gets more than its need)."""
    p = model.problem
    for j, arcs in enumerate(_arcs_by(p.arc_sink, len(p.sinks))):
        if arcs:
            expr = _expr([(model.x[a], 1.0) for a in arcs])
            model.add("demand", constraint_name("demand", p.group, j), expr <= p.sinks[j].demand)


def define_min_fill(model: PulpModel) -> None:
    """Hard protocol requirement: each need of a tier filled to at least a fraction."""
    p = model.problem
    by_sink = _arcs_by(p.arc_sink, len(p.sinks))
    for j, sink in enumerate(p.sinks):
        fraction = p.min_fill_of(sink.tier)
        if fraction > 0 and sink.demand > 0:
            expr = _expr([(model.x[a], 1.0) for a in by_sink[j]])
            model.add(
                "min_fill", constraint_name("min_fill", p.group, j), expr >= fraction * sink.demand
            )


def define_lots(model: PulpModel) -> None:
    """Whole units / packs: each transfer is an integer multiple of the step."""
    p = model.problem
    step = p.options.step
    if step is None:
        return
    for a, var in enumerate(model.x):
        k = pulp.LpVariable(f"k__{_tag(p.group)}__{a}", lowBound=0, cat=pulp.LpInteger)
        model.add("lots", constraint_name("lots", p.group, a), var - step * k == 0)


def define_min_shipment(model: PulpModel) -> None:
    """A transfer is either zero or at least the minimum shipment size."""
    p = model.problem
    lot = p.options.min_lot
    if lot is None:
        return
    for a, var in enumerate(model.x):
        src, snk = int(p.arc_source[a]), int(p.arc_sink[a])
        upper = min(p.sources[src].capacity, p.sinks[snk].demand)
        y = pulp.LpVariable(f"y__{_tag(p.group)}__{a}", cat=pulp.LpBinary)
        model.add(
            "min_shipment", constraint_name("min_shipment_lo", p.group, a), var - lot * y >= 0
        )
        model.add(
            "min_shipment", constraint_name("min_shipment_hi", p.group, a), var - upper * y <= 0
        )


FAMILY_BUILDERS = {
    "supply": define_supply,
    "demand": define_demand,
    "min_fill": define_min_fill,
    "lots": define_lots,
    "min_shipment": define_min_shipment,
}


def build_model(problem: TransportProblem, skip: frozenset[str] = frozenset()) -> PulpModel:
    model = define_flow_variables(problem)
    for family, builder in FAMILY_BUILDERS.items():
        if family not in skip:
            builder(model)
    return model


def _sink_inflow(model: PulpModel, sinks: list[int]) -> pulp.LpAffineExpression:
    p = model.problem
    wanted = set(sinks)
    return _expr([(model.x[a], 1.0) for a in range(p.n_arcs) if int(p.arc_sink[a]) in wanted])


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.01, self.end - time.monotonic())


def _solve(
    model: PulpModel, choice: SolverChoice, deadline: _Deadline, presolve: bool = True
) -> SolveStatus:
    try:
        model.lp.solve(make_pulp_solver(choice, deadline.left(), presolve))
    except pulp.PulpSolverError:
        return SolveStatus.ERROR
    return pulp_status(model.lp)


def _stage(model: PulpModel, choice: SolverChoice, deadline: _Deadline, first: bool) -> SolveStatus:
    """Solve one lexicographic stage.

    Only the first stage can be infeasible (a conflict of rules, explained by
    :func:`explain_infeasible`): every later stage has a feasible plan, the previous
    stage's (see :class:`_Certificate`), so "infeasible" there is the solver misjudging
    it. Seen with fairness and whole units or minimum shipments: HiGHS' MIP presolve and
    CBC's MIP preprocessing reject a stage that the previous plan satisfies exactly.
    Such a stage is solved once more without them; if that fails too, it is a solver
    error.
    """
    status = _solve(model, choice, deadline)
    if first or status is not SolveStatus.INFEASIBLE:
        return status
    status = _solve(model, choice, deadline, presolve=False)
    return SolveStatus.ERROR if status is SolveStatus.INFEASIBLE else status


def _flows(model: PulpModel) -> np.ndarray:
    return np.array([max(0.0, v.value() or 0.0) for v in model.x], dtype=np.float64)


class _Certificate:
    """Stage values to fix: never above the lexicographic optimum (see the module doc).

    While no fixed value exceeds the lexicographic optimum ``x_lex``, every stage LP
    contains ``x_lex``, so a stage's optimum receives at least what ``x_lex`` does:
    a stage plan's receipts (capped at each need) are an upper bound, kept for each
    fixed tier. A stage plan ``x`` may receive more than ``x_lex`` for its tier
    through the fixing slack of the tiers above and rows violated within the
    solver's feasibility tolerance. Its excess bounds that in units of flow: supply
    given beyond a capacity, minimum fill missed, and how far each fixed tier is
    below its upper bound. Bringing ``x`` back to exact rows and to ``x_lex``'s
    higher-tier totals moves at most that many units, each along one augmenting
    path, which takes it from at most one other need (transportation LP). So the
    exact optimum is at least ``received(x) - excess`` for a tier total and
    ``ratio(x) - excess / smallest need`` for a minimum fill ratio: these certified
    values are what is fixed. With whole units, packs or minimum shipments the path
    argument does not hold exactly, but the excess is then solver noise far below
    one pack or shipment.
    """

    def __init__(self, problem: TransportProblem) -> None:
        self.problem = problem
        fraction = np.array([problem.min_fill_of(t) for t in problem.sink_tier.tolist()])
        self.min_fill = fraction * problem.demand
        self.upper: list[tuple[npt.NDArray[np.bool_], float]] = []  # fixed tier: sinks, bound

    def _received(self, flows: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
        """Receipts per sink (capped at the need) and the plan's excess."""
        p = self.problem
        inflow = np.bincount(p.arc_sink, weights=flows, minlength=len(p.sinks))
        outflow = np.bincount(p.arc_source, weights=flows, minlength=len(p.sources))
        excess = float(np.clip(outflow - p.capacity, 0.0, None).sum())
        excess += float(np.clip(self.min_fill - inflow, 0.0, None).sum())
        excess += sum(max(0.0, bound - float(inflow[mask].sum())) for mask, bound in self.upper)
        return np.minimum(inflow, p.demand), excess

    def _mask(self, sinks: list[int]) -> npt.NDArray[np.bool_]:
        mask = np.zeros(len(self.problem.sinks), dtype=bool)
        mask[sinks] = True
        return mask

    def fix_total(self, flows: npt.NDArray[np.float64], sinks: list[int]) -> float:
        """The certified total of a tier's stage plan; its receipts become the tier's bound."""
        received, excess = self._received(flows)
        mask = self._mask(sinks)
        total = float(received[mask].sum())
        self.upper.append((mask, total))
        return max(0.0, total - excess)

    def fill_ratio(self, flows: npt.NDArray[np.float64], sinks: list[int]) -> float:
        """The certified minimum fill ratio of a tier's fairness stage plan."""
        received, excess = self._received(flows)
        demand = self.problem.demand[sinks]
        ratio = float((received[sinks] / demand).min()) - excess / float(demand.min())
        return min(1.0, max(0.0, ratio))


def solve_lexicographic(problem: TransportProblem, choice: SolverChoice) -> TransportSolution:
    """Tiers strictly (with optional fairness), then least cost, with PuLP."""
    deadline = _Deadline(choice.time_limit_s)
    model = build_model(problem)
    solution = TransportSolution(problem.group, SolveStatus.OPTIMAL, np.zeros(problem.n_arcs))
    solution.method = f"pulp/{choice.name}"
    if problem.n_arcs == 0:
        if problem.options.min_fill and _needs_fill(problem):
            return explain_infeasible(problem, choice, solution)
        return solution
    certificate = _Certificate(problem)
    for tier in problem.tiers:
        sinks = [j for j, s in enumerate(problem.sinks) if s.tier == tier and s.demand > 0]
        if problem.options.fairness:
            z = pulp.LpVariable(f"z__{_tag(problem.group)}__t{tier}", lowBound=0, upBound=1)
            by_sink = _arcs_by(problem.arc_sink, len(problem.sinks))
            for j in sinks:
                expr = _expr(
                    [(model.x[a], 1.0) for a in by_sink[j]] + [(z, -problem.sinks[j].demand)]
                )
                model.add(
                    "fairness",
                    constraint_name("fairness", problem.group, f"t{tier}_{j}"),
                    expr >= 0,
                )
            model.lp.setObjective(_expr([(z, 1.0)]))
            model.lp.sense = pulp.LpMaximize
            status = _stage(model, choice, deadline, first=not solution.stages)
            if status is not SolveStatus.OPTIMAL:
                return _stop(problem, choice, model, solution, status)
            value = certificate.fill_ratio(_flows(model), sinks)
            solution.stages.append((f"min fill ratio tier {tier}", value))
            model.add(
                "fairness",
                constraint_name("fairness_fix", problem.group, f"t{tier}"),
                _expr([(z, 1.0)]) >= value,
            )
        inflow = _sink_inflow(model, sinks)
        model.lp.setObjective(inflow)
        model.lp.sense = pulp.LpMaximize
        status = _stage(model, choice, deadline, first=not solution.stages)
        if status is not SolveStatus.OPTIMAL:
            return _stop(problem, choice, model, solution, status)
        value = certificate.fix_total(_flows(model), sinks)
        solution.stages.append((f"fulfilled tier {tier}", value))
        model.add(
            "tier_priority",
            constraint_name("tier_priority", problem.group, f"t{tier}"),
            inflow >= value,
        )
    cost = _expr([(model.x[a], float(problem.arc_cost[a])) for a in range(problem.n_arcs)])
    model.lp.setObjective(cost)
    model.lp.sense = pulp.LpMinimize
    status = _stage(model, choice, deadline, first=False)
    if status is not SolveStatus.OPTIMAL:
        return _stop(problem, choice, model, solution, status)
    solution.flows = _flows(model)
    solution.stages.append(("transport cost", float(pulp.value(cost) or 0.0)))
    return solution


def _needs_fill(problem: TransportProblem) -> bool:
    return any(problem.min_fill_of(s.tier) > 0 and s.demand > 0 for s in problem.sinks)


def _stop(
    problem: TransportProblem,
    choice: SolverChoice,
    model: PulpModel,
    solution: TransportSolution,
    status: SolveStatus,
) -> TransportSolution:
    solution.status = status
    if status is SolveStatus.TIME_LIMIT:
        solution.flows = _flows(model)
        solution.explanation = (
            f"{problem.group}: time limit reached; best feasible plan shown, not proven optimal"
        )
    elif status is SolveStatus.INFEASIBLE:
        return explain_infeasible(problem, choice, solution)
    elif model.lp.status == pulp.LpStatusInfeasible:
        solution.explanation = (
            f"{problem.group}: the solver declared a stage infeasible although the previous "
            "stage's plan satisfies it (also without presolve); solver trouble, not a "
            "conflict of rules: try the other solver"
        )
    else:
        solution.explanation = f"{problem.group}: the solver failed (status {model.lp.status})"
    return solution


def _feasible_without(problem: TransportProblem, choice: SolverChoice, family: str) -> bool:
    relaxed = problem
    if family == "lanes":
        relaxed = _all_lanes(problem)
    model = build_model(relaxed, skip=frozenset({family}))
    model.lp.setObjective(_expr([(v, 0.0) for v in model.x[:1]]))
    if not model.x:
        return not (_needs_fill(relaxed) and family != "min_fill")
    status = _solve(model, choice, _Deadline(choice.time_limit_s))
    return status.has_solution


def _all_lanes(problem: TransportProblem) -> TransportProblem:
    n_src, n_snk = len(problem.sources), len(problem.sinks)
    src = np.repeat(np.arange(n_src, dtype=np.int64), n_snk)
    snk = np.tile(np.arange(n_snk, dtype=np.int64), n_src)
    return TransportProblem(
        problem.group,
        problem.sources,
        problem.sinks,
        src,
        snk,
        np.zeros(src.shape[0]),
        problem.options,
        problem.vocabulary,
    )


def present_families(problem: TransportProblem) -> list[str]:
    families = ["supply", "demand", "lanes"]
    if _needs_fill(problem):
        families.append("min_fill")
    if problem.options.step is not None:
        families.append("lots")
    if problem.options.min_lot is not None:
        families.append("min_shipment")
    return families


def explain_infeasible(
    problem: TransportProblem, choice: SolverChoice, solution: TransportSolution
) -> TransportSolution:
    """Deletion filter over constraint families: which ones conflict, in coordinator words."""
    families = present_families(problem)
    conflicting = tuple(f for f in families if _feasible_without(problem, choice, f))
    if not conflicting:
        conflicting = tuple(families)
    words = problem.vocabulary
    required = sum(problem.min_fill_of(s.tier) * s.demand for s in problem.sinks if s.demand > 0)
    available = sum(s.capacity for s in problem.sources)
    rules = " and ".join(f"'{words.family(f, problem.options.min_fill)}'" for f in conflicting)
    solution.status = SolveStatus.INFEASIBLE
    solution.conflicting = conflicting
    solution.flows = np.zeros(problem.n_arcs)
    tiers = ", ".join(TIER_WORDS[t] for t, _ in problem.options.min_fill)
    solution.explanation = (
        f"{problem.group}: no plan can satisfy these rules together: {rules}. "
        f"The minimum fill for {tiers or 'the needs'} requires {required:g} {words.unit}; "
        f"at most {available:g} {words.unit} are available in total."
    )
    return solution
