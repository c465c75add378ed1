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

from dataclasses import dataclass

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
    # Presolve finds nothing to remove in a transportation matrix (every column is
    # one supply and one demand entry) and costs ~40 % of the solve time.
    h.setOptionValue("presolve", "off")
    return h


@dataclass(frozen=True)
class LpArrays:
    """A column-wise LP as numpy arrays (the layout of ``Highs.passModel``'s array form)."""

    col_cost: npt.NDArray[np.float64]
    col_lower: npt.NDArray[np.float64]
    col_upper: npt.NDArray[np.float64]
    row_lower: npt.NDArray[np.float64]
    row_upper: npt.NDArray[np.float64]
    a_start: npt.NDArray[np.int32]
    a_index: npt.NDArray[np.int32]
    a_value: npt.NDArray[np.float64]

    def pass_to(self, h: highspy.Highs) -> None:
        """Hand the arrays to HiGHS as buffers (the ``HighsLp`` matrix setters copy
        element by element through Python and cost more than the solve)."""
        n = int(self.col_cost.shape[0])
        status = h.passModel(
            n,
            int(self.row_lower.shape[0]),
            int(self.a_index.shape[0]),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            self.col_cost,
            self.col_lower,
            self.col_upper,
            self.row_lower,
            self.row_upper,
            self.a_start,
            self.a_index,
            self.a_value,
            np.zeros(n, dtype=np.int32),  # all continuous
        )
        if status == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the model")


def _model(problem: TransportProblem, tier_rows: list[tuple[int, float]] | None = None) -> LpArrays:
    """Supply rows, demand rows, then one ``sum(tier arcs) >= bound`` row per ``tier_rows``."""
    n, n_src, n_snk = problem.n_arcs, len(problem.sources), len(problem.sinks)
    caps = np.fromiter((s.capacity for s in problem.sources), np.float64, n_src)
    demand = np.fromiter((s.demand for s in problem.sinks), np.float64, n_snk)
    fill = np.fromiter((problem.min_fill_of(s.tier) for s in problem.sinks), np.float64, n_snk)
    row_lower = [np.full(n_src, -INF), fill * demand]
    row_upper = [caps, demand]
    entries = [problem.arc_source, n_src + problem.arc_sink]
    counts = np.full(n, 2, dtype=np.int64)
    if tier_rows:
        sink_tier = _sink_tiers(problem)[problem.arc_sink]
        arc_row = np.full(n, -1, dtype=np.int64)
        for k, (tier, _) in enumerate(tier_rows):
            arc_row[sink_tier == tier] = n_src + n_snk + k
        has_row = arc_row >= 0
        counts += has_row
        entries.append(arc_row)
        row_lower.append(np.array([b for _, b in tier_rows], dtype=np.float64))
        row_upper.append(np.full(len(tier_rows), INF))
    # Column a holds (supply row, demand row[, tier row]): ascending row indices.
    index = np.stack(entries, axis=1)
    if tier_rows:
        index = index[np.stack([np.ones(n, bool), np.ones(n, bool), has_row], axis=1)]
    start = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=start[1:])
    return LpArrays(
        col_cost=np.ascontiguousarray(problem.arc_cost, dtype=np.float64),
        col_lower=np.zeros(n),
        col_upper=np.full(n, INF),
        row_lower=np.concatenate(row_lower),
        row_upper=np.concatenate(row_upper),
        a_start=start,
        a_index=index.ravel().astype(np.int32),
        a_value=np.ones(int(start[-1])),
    )


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


def _sink_tiers(problem: TransportProblem) -> npt.NDArray[np.int64]:
    return np.fromiter((s.tier for s in problem.sinks), np.int64, len(problem.sinks))


def _tier_arcs(problem: TransportProblem, tier: int) -> npt.NDArray[np.int32]:
    return np.nonzero(_sink_tiers(problem)[problem.arc_sink] == tier)[0].astype(np.int32)


def _closed_form_rows(
    problem: TransportProblem, targets: dict[int, float]
) -> list[tuple[int, float]]:
    present = set(_sink_tiers(problem)[problem.arc_sink].tolist())
    return [
        (tier, value - stage_tolerance(value))
        for tier, value in targets.items()
        if value > 0 and tier in present
    ]


def batchable(problem: TransportProblem) -> bool:
    """Whether the problem can share one block-diagonal cost LP with others
    (fast path, closed-form tier maxima, at least one arc)."""
    return (
        fast_path_applies(problem)
        and problem.n_arcs > 0
        and closed_form_tier_targets(problem) is not None
    )


def _stack(blocks: list[LpArrays]) -> LpArrays:
    """Block-diagonal LP of independent column-wise LPs (block k's rows and columns
    follow those of block k - 1)."""
    row_offsets = np.cumsum([0] + [int(b.row_lower.shape[0]) for b in blocks])
    nnz_offsets = np.cumsum([0] + [int(b.a_index.shape[0]) for b in blocks])
    return LpArrays(
        col_cost=np.concatenate([b.col_cost for b in blocks]),
        col_lower=np.concatenate([b.col_lower for b in blocks]),
        col_upper=np.concatenate([b.col_upper for b in blocks]),
        row_lower=np.concatenate([b.row_lower for b in blocks]),
        row_upper=np.concatenate([b.row_upper for b in blocks]),
        a_start=np.concatenate(
            [b.a_start[:-1] + nnz_offsets[k] for k, b in enumerate(blocks)]
            + [np.array([nnz_offsets[-1]])]
        ).astype(np.int32),
        a_index=np.concatenate([b.a_index + row_offsets[k] for k, b in enumerate(blocks)]).astype(
            np.int32
        ),
        a_value=np.concatenate([b.a_value for b in blocks]),
    )


def solve_fast_batch(
    problems: list[TransportProblem], time_limit_s: float
) -> list[TransportSolution] | None:
    """Lexicographic optima of several :func:`batchable` problems from ONE highspy run.

    The problems never interact, so their cost LPs (closed-form tier maxima fixed as
    rows, exactly as in :func:`solve_fast`) are stacked block-diagonally: an optimum
    of the stacked LP restricted to each block is an optimum of that block's LP, and
    the sum of block costs is minimal only if each block's cost is. One LP instead of
    many saves HiGHS' per-model setup, which dominates for small problems. Returns
    None if the stacked LP is not solved to optimality (the caller then solves the
    problems one by one, so statuses and explanations stay per problem).
    """
    blocks: list[LpArrays] = []
    solutions: list[TransportSolution] = []
    for problem in problems:
        targets = closed_form_tier_targets(problem)
        assert targets is not None
        blocks.append(_model(problem, _closed_form_rows(problem, targets)))
        solution = TransportSolution(
            problem.group,
            SolveStatus.OPTIMAL,
            np.zeros(problem.n_arcs),
            method="highspy/closed-form tiers",
        )
        solution.stages += [(f"fulfilled tier {tier}", value) for tier, value in targets.items()]
        solutions.append(solution)
    h = _highs(time_limit_s)
    _stack(blocks).pass_to(h)
    h.run()
    if _status(h) is not SolveStatus.OPTIMAL:
        return None
    flows = np.maximum(0.0, np.asarray(h.getSolution().col_value, dtype=np.float64))
    start = 0
    for problem, solution in zip(problems, solutions, strict=True):
        solution.flows = flows[start : start + problem.n_arcs].copy()
        start += problem.n_arcs
        cost = float(np.asarray(problem.arc_cost, dtype=np.float64) @ solution.flows)
        solution.stages.append(("transport cost", cost))
    return solutions


def solve_fast(problem: TransportProblem, time_limit_s: float) -> TransportSolution:
    """Lexicographic (tiers, then cost) optimum of a continuous problem with highspy."""
    n = problem.n_arcs
    solution = TransportSolution(problem.group, SolveStatus.OPTIMAL, np.zeros(n), method="highspy")
    if n == 0:
        if any(problem.min_fill_of(s.tier) > 0 and s.demand > 0 for s in problem.sinks):
            solution.status = SolveStatus.INFEASIBLE
        return solution
    h = _highs(time_limit_s)
    targets = closed_form_tier_targets(problem)
    if targets is not None:
        # Tier optima known exactly: fixed as rows of the one (cost) LP, built with the matrix.
        solution.method = "highspy/closed-form tiers"
        solution.stages += [(f"fulfilled tier {tier}", value) for tier, value in targets.items()]
        _model(problem, _closed_form_rows(problem, targets)).pass_to(h)
    else:
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
