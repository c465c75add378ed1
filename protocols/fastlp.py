"""Fast exact path for continuous transportation problems: matrices straight to highspy.

Used for LP problems (no whole units, packs, minimum shipments or fairness) with
the HiGHS solver. It solves the same model as :mod:`protocols.pulp_model`
(same families, same lexicographic order) without PuLP's per-variable Python
objects: the constraint matrix of a transportation problem is known in closed
form (every arc is in exactly one supply row and one demand row), so it is
passed to HiGHS as numpy arrays.

Tier stages. When every source with capacity has a lane to every sink with
demand ("complete" problem) and there is no minimum-fill requirement, the most
that tier ``t`` can receive once tiers ``< t`` are at their maximum is exactly
``min(D_t, S - F_1 - ... - F_{t-1})`` (``S`` total capacity, ``D_t`` demand of
tier ``t``): any split of supply over sinks is reachable, so only the totals
bind. Those values are then fixed as rows and one cost LP is solved; this is
the same optimum as the stage-by-stage LPs, not an approximation. Otherwise one
max-flow-like LP per tier is solved and fixed before the cost LP (warm-started).
"""

from __future__ import annotations

import highspy
import numpy as np
import numpy.typing as npt

from protocols.status import SolveStatus
from protocols.transport import TransportProblem, TransportSolution, stage_tolerance

INF = highspy.kHighsInf


def fast_path_applies(problem: TransportProblem) -> bool:
    return not (problem.options.is_mip or problem.options.fairness)


def _highs(time_limit_s: float) -> highspy.Highs:
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(max(0.01, time_limit_s)))
    return h


def _model(problem: TransportProblem) -> highspy.HighsLp:
    n, n_src, n_snk = problem.n_arcs, len(problem.sources), len(problem.sinks)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = n_src + n_snk
    lp.col_cost_ = problem.arc_cost.astype(np.float64)
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, INF)
    caps = np.array([s.capacity for s in problem.sources], dtype=np.float64)
    demand = np.array([s.demand for s in problem.sinks], dtype=np.float64)
    fill = np.array([problem.min_fill_of(s.tier) for s in problem.sinks], dtype=np.float64)
    lp.row_lower_ = np.concatenate([np.full(n_src, -INF), fill * demand])
    lp.row_upper_ = np.concatenate([caps, demand])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
    index = np.empty(2 * n, dtype=np.int32)
    index[0::2] = problem.arc_source
    index[1::2] = n_src + problem.arc_sink
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = np.ones(2 * n)
    lp.sense_ = highspy.ObjSense.kMinimize
    return lp


def closed_form_tier_targets(problem: TransportProblem) -> dict[int, float] | None:
    """Exact lexicographic tier maxima for complete problems without minimum fill."""
    if problem.options.min_fill or not problem.is_complete():
        return None
    remaining = sum(s.capacity for s in problem.sources)
    targets: dict[int, float] = {}
    for tier in problem.tiers:
        demand = sum(s.demand for s in problem.sinks if s.tier == tier)
        targets[tier] = max(0.0, min(demand, remaining))
        remaining -= targets[tier]
    return targets


def _status(h: highspy.Highs) -> SolveStatus:
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return SolveStatus.OPTIMAL
    if status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return SolveStatus.INFEASIBLE
    if status == highspy.HighsModelStatus.kTimeLimit:
        feasible = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
        return SolveStatus.TIME_LIMIT if feasible else SolveStatus.ERROR
    return SolveStatus.ERROR


def _tier_arcs(problem: TransportProblem, tier: int) -> npt.NDArray[np.int32]:
    sink_tier = np.array([s.tier for s in problem.sinks], dtype=np.int64)
    return np.nonzero(sink_tier[problem.arc_sink] == tier)[0].astype(np.int32)


def solve_fast(problem: TransportProblem, time_limit_s: float) -> TransportSolution:
    """Lexicographic (tiers, then cost) optimum of a continuous problem with highspy."""
    n = problem.n_arcs
    solution = TransportSolution(problem.group, SolveStatus.OPTIMAL, np.zeros(n), method="highspy")
    if n == 0:
        if any(problem.min_fill_of(s.tier) > 0 and s.demand > 0 for s in problem.sinks):
            solution.status = SolveStatus.INFEASIBLE
        return solution
    h = _highs(time_limit_s)
    h.passModel(_model(problem))
    targets = closed_form_tier_targets(problem)
    if targets is not None:
        solution.method = "highspy/closed-form tiers"
        for tier, value in targets.items():
            arcs = _tier_arcs(problem, tier)
            if value > 0 and arcs.size:
                h.addRow(value - stage_tolerance(value), INF, arcs.size, arcs, np.ones(arcs.size))
            solution.stages.append((f"fulfilled tier {tier}", value))
    else:
        all_arcs = np.arange(n, dtype=np.int32)
        for tier in problem.tiers:
            arcs = _tier_arcs(problem, tier)
            if arcs.size == 0:
                solution.stages.append((f"fulfilled tier {tier}", 0.0))
                continue
            cost = np.zeros(n)
            cost[arcs] = -1.0
            h.changeColsCost(n, all_arcs, cost)
            h.run()
            status = _status(h)
            if status is not SolveStatus.OPTIMAL:
                return _stop(h, solution, status)
            value = -float(h.getInfo().objective_function_value)
            solution.stages.append((f"fulfilled tier {tier}", value))
            h.addRow(value - stage_tolerance(value), INF, arcs.size, arcs, np.ones(arcs.size))
        h.changeColsCost(n, all_arcs, problem.arc_cost.astype(np.float64))
    h.run()
    status = _status(h)
    if status is not SolveStatus.OPTIMAL:
        return _stop(h, solution, status)
    solution.flows = np.maximum(0.0, np.asarray(h.getSolution().col_value, dtype=np.float64))
    solution.stages.append(("transport cost", float(h.getInfo().objective_function_value)))
    return solution


def _stop(h: highspy.Highs, solution: TransportSolution, status: SolveStatus) -> TransportSolution:
    solution.status = status
    if status is SolveStatus.TIME_LIMIT:
        solution.flows = np.maximum(0.0, np.asarray(h.getSolution().col_value, dtype=np.float64))
        solution.explanation = (
            f"{solution.group}: time limit reached; best feasible plan shown, not proven optimal"
        )
    return solution
