"""Fast exact path for continuous transportation problems: matrices straight to highspy.

Used for LP problems (no whole units, packs, minimum shipments or fairness) with
the HiGHS solver. It solves the same model as :mod:`protocols.pulp_model`
(same families, same lexicographic order) without PuLP's per-variable Python
objects: the constraint matrix of a transportation problem is known in closed
form (every arc is in exactly one supply row and one demand row), so it is
passed to HiGHS as numpy arrays.

Tier stages. When every source with capacity has a lane to every sink with
demand ("complete" problem) and there is no minimum-fill requirement, the tier
maxima are known in closed form and built into the bounds of ONE plain
transportation LP (:mod:`protocols.tier_reduction`, exact, not an approximation).
Otherwise one max-flow-like LP per tier is solved and fixed before the cost LP
(warm-started).
"""

from __future__ import annotations

import highspy
import numpy as np
import numpy.typing as npt

from protocols.highs_lp import (
    IDLE_DEVEX,
    INF,
    LpArrays,
    column_values,
    new_highs,
    status_of,
)
from protocols.status import SolveStatus
from protocols.tier_reduction import (
    TierReduction,
    TierReductions,
    closed_form_tier_targets,
    reduce_tiers,
)
from protocols.transport import TransportProblem, TransportSolution, stage_tolerance

__all__ = [
    "LpArrays",
    "batchable",
    "closed_form_tier_targets",
    "fast_path_applies",
    "solve_fast",
    "solve_fast_batch",
]

CLOSED_FORM = "highspy/closed-form tiers"


def fast_path_applies(problem: TransportProblem) -> bool:
    return not (problem.options.is_mip or problem.options.fairness)


def _model(problem: TransportProblem) -> LpArrays:
    """Supply rows then demand rows (with minimum fill as the demand rows' lower bound)."""
    n, n_src, n_snk = problem.n_arcs, len(problem.sources), len(problem.sinks)
    caps = np.fromiter((s.capacity for s in problem.sources), np.float64, n_src)
    demand = np.fromiter((s.demand for s in problem.sinks), np.float64, n_snk)
    fill = np.fromiter((problem.min_fill_of(s.tier) for s in problem.sinks), np.float64, n_snk)
    index = np.empty(2 * n, dtype=np.int32)  # column a: (supply row, demand row), ascending
    index[0::2] = problem.arc_source
    index[1::2] = n_src + problem.arc_sink
    return LpArrays(
        col_cost=np.ascontiguousarray(problem.arc_cost, dtype=np.float64),
        col_lower=np.zeros(n),
        col_upper=np.full(n, INF),
        row_lower=np.concatenate([np.full(n_src, -INF), fill * demand]),
        row_upper=np.concatenate([caps, demand]),
        a_start=np.arange(0, 2 * n + 1, 2, dtype=np.int32),
        a_index=index,
        a_value=np.ones(2 * n),
    )


def _tier_arcs(problem: TransportProblem, tier: int) -> npt.NDArray[np.int32]:
    sink_tier = np.fromiter((s.tier for s in problem.sinks), np.int64, len(problem.sinks))
    return np.nonzero(sink_tier[problem.arc_sink] == tier)[0].astype(np.int32)


def batchable(problem: TransportProblem) -> bool:
    """Whether the problem can share one block-diagonal cost LP with others
    (fast path, closed-form tier maxima, at least one arc)."""
    return (
        fast_path_applies(problem)
        and problem.n_arcs > 0
        and closed_form_tier_targets(problem) is not None
    )


def run_lp(lp: LpArrays, time_limit_s: float) -> tuple[SolveStatus, npt.NDArray[np.float64] | None]:
    """Solve a (stacked) reduced cost LP: status and column values (None unless optimal
    or a feasible plan at the time limit).

    Only highspy calls (``run`` releases the GIL), so threads can share the work."""
    if lp.n_cols == 0:
        return SolveStatus.OPTIMAL, np.zeros(0)
    h = new_highs(time_limit_s, devex=True)
    lp.pass_to(h)
    h.run()
    status = status_of(h)
    feasible = status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
    return status, column_values(h) if feasible else None


def prepare_lp(lp: LpArrays, time_limit_s: float) -> highspy.Highs | None:
    """A HiGHS instance holding the reduced LP ``lp``, ready to run (None: no columns);
    an idle instance of :data:`protocols.highs_lp.IDLE_DEVEX` if there is one (give it
    back with :func:`release_lp` once its result is read)."""
    if lp.n_cols == 0:
        return None
    h = IDLE_DEVEX.take(time_limit_s)
    try:
        lp.pass_to(h)
    except Exception:
        IDLE_DEVEX.give_back(h)
        raise
    return h


def release_lp(h: highspy.Highs | None) -> None:
    """Hand an instance of :func:`prepare_lp` back for reuse (its result read)."""
    if h is not None:
        IDLE_DEVEX.give_back(h)


def lp_result(
    h: highspy.Highs | None,
) -> tuple[SolveStatus, npt.NDArray[np.float64] | None]:
    """Status and column values of a prepared LP after ``run`` (see :func:`run_lp`)."""
    if h is None:
        return SolveStatus.OPTIMAL, np.zeros(0)
    status = status_of(h)
    feasible = status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
    return status, column_values(h) if feasible else None


def closed_form_solution(
    problem: TransportProblem, reduction: TierReduction, values: npt.NDArray[np.float64]
) -> TransportSolution:
    """The solution of ``problem`` from the column values of its reduced LP."""
    flows = reduction.flows(problem, values)
    solution = TransportSolution(problem.group, SolveStatus.OPTIMAL, flows, method=CLOSED_FORM)
    solution.stages += [(f"fulfilled tier {t}", v) for t, v in reduction.targets.items()]
    cost = np.asarray(problem.arc_cost, dtype=np.float64)[reduction.arcs] @ values
    solution.stages.append(("transport cost", float(cost)))
    return solution


def split_stacked(
    problems: list[TransportProblem],
    reductions: list[TierReduction],
    values: npt.NDArray[np.float64],
) -> list[TransportSolution]:
    """Per-problem solutions from the column values of their stacked reduced LPs."""
    solutions = []
    start = 0
    for problem, reduction in zip(problems, reductions, strict=True):
        end = start + reduction.n_cols
        solutions.append(closed_form_solution(problem, reduction, values[start:end]))
        start = end
    return solutions


def solve_fast_batch(
    problems: list[TransportProblem], time_limit_s: float
) -> list[TransportSolution] | None:
    """Lexicographic optima of several :func:`batchable` problems from ONE highspy run.

    The problems never interact, so their reduced cost LPs (closed-form tier maxima
    built into the bounds, exactly as in :func:`solve_fast`) are stacked
    block-diagonally: an optimum of the stacked LP restricted to each block is an
    optimum of that block's LP, and the sum of block costs is minimal only if each
    block's cost is. One LP instead of many saves HiGHS' per-model setup. Returns
    None if the stacked LP is not solved to optimality (the caller then solves the
    problems one by one, so statuses and explanations stay per problem).
    """
    together = TierReductions(problems)
    reductions = [together.get(k) for k in range(len(problems))]
    kept = [r for r in reductions if r is not None]
    assert len(kept) == len(problems), "every problem must be batchable"
    status, values = run_lp(together.stacked(0, len(problems) - 1), time_limit_s)
    if status is not SolveStatus.OPTIMAL or values is None:
        return None
    return split_stacked(problems, kept, values)


def solve_fast(problem: TransportProblem, time_limit_s: float) -> TransportSolution:
    """Lexicographic (tiers, then cost) optimum of a continuous problem with highspy."""
    reduction = reduce_tiers(problem) if problem.n_arcs > 0 else None
    if reduction is not None:
        return solve_reduced(problem, reduction, time_limit_s)
    return solve_staged(problem, time_limit_s)


def solve_staged(problem: TransportProblem, time_limit_s: float) -> TransportSolution:
    """One LP per tier stage (each optimum fixed as a row), then the cost LP, warm-started.

    The general fast path (lanes missing, minimum fill); complete problems give the same
    optimum from their reduced LP alone (compared in the tests)."""
    n = problem.n_arcs
    solution = TransportSolution(problem.group, SolveStatus.OPTIMAL, np.zeros(n), method="highspy")
    if n == 0:
        if any(problem.min_fill_of(s.tier) > 0 and s.demand > 0 for s in problem.sinks):
            solution.status = SolveStatus.INFEASIBLE
        return solution
    h = new_highs(time_limit_s)
    _model(problem).pass_to(h)
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
        status = status_of(h)
        if status is not SolveStatus.OPTIMAL:
            return _stop(h, solution, status)
        value = -float(h.getInfo().objective_function_value)
        solution.stages.append((f"fulfilled tier {tier}", value))
        h.addRow(value - stage_tolerance(value), INF, arcs.size, arcs, np.ones(arcs.size))
    h.changeColsCost(n, all_arcs, problem.arc_cost.astype(np.float64))
    h.run()
    status = status_of(h)
    if status is not SolveStatus.OPTIMAL:
        return _stop(h, solution, status)
    solution.flows = column_values(h)
    solution.stages.append(("transport cost", float(h.getInfo().objective_function_value)))
    return solution


def solve_reduced(
    problem: TransportProblem, reduction: TierReduction, time_limit_s: float
) -> TransportSolution:
    """One complete problem alone: its reduced cost LP (see :mod:`protocols.tier_reduction`)."""
    status, values = run_lp(reduction.lp, time_limit_s)
    return reduced_outcome(problem, reduction, status, values)


def reduced_outcome(
    problem: TransportProblem,
    reduction: TierReduction,
    status: SolveStatus,
    values: npt.NDArray[np.float64] | None,
) -> TransportSolution:
    """The solution of one problem from the result of its reduced LP, whatever the status."""
    if status is SolveStatus.OPTIMAL and values is not None:
        return closed_form_solution(problem, reduction, values)
    solution = TransportSolution(
        problem.group, status, np.zeros(problem.n_arcs), method=CLOSED_FORM
    )
    solution.stages += [(f"fulfilled tier {t}", v) for t, v in reduction.targets.items()]
    if status is SolveStatus.TIME_LIMIT and values is not None:
        solution.flows = reduction.flows(problem, values)
        solution.explanation = (
            f"{solution.group}: time limit reached; best feasible plan shown, not proven optimal"
        )
    return solution


def _stop(h: highspy.Highs, solution: TransportSolution, status: SolveStatus) -> TransportSolution:
    solution.status = status
    if status is SolveStatus.TIME_LIMIT:
        solution.flows = column_values(h)
        solution.explanation = (
            f"{solution.group}: time limit reached; best feasible plan shown, not proven optimal"
        )
    return solution
