"""Pick the solving path for a transportation problem and keep the status a value.

The problems of one run (materials, capabilities) never interact, so the ones on
the highspy fast path are solved concurrently in a thread pool: ``Highs.run``
releases the GIL (measured: 2 threads solve the 100 material LPs of the
200 x 100 benchmark in half the time of one). Results keep the input order and
each LP is solved exactly as it would be alone, so decisions do not depend on
the number of threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from protocols.fastlp import (
    fast_path_applies,
    reduced_outcome,
    run_lp,
    solve_fast,
    solve_reduced,
    split_stacked,
)
from protocols.highs_lp import LpArrays, stack
from protocols.pulp_model import explain_infeasible, solve_lexicographic
from protocols.solvers import SolverChoice
from protocols.status import SolveStatus
from protocols.tier_reduction import TierReduction, reduce_tiers
from protocols.transport import TransportProblem, TransportSolution

#: Upper bound on solver threads; the default is the number of usable cores.
MAX_WORKERS = 8

#: Small closed-form problems are stacked into block-diagonal LPs of at most this
#: many columns (fixed, so the batches, and with them the decision, do not depend
#: on the thread count). Larger problems are solved alone, one per thread. Measured
#: at 50 x 50 (~420 columns per material, solve stage, 2 threads): 0 (no stacking)
#: 0.072 s, 1,000 0.062 s, 2,000-3,000 0.057 s, 11,000 0.068 s, 50,000 0.100 s (one
#: LP: simplex time grows faster than the model and the second thread idles).
BATCH_COLUMNS = 2_500


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def _uses_fast_path(problem: TransportProblem, choice: SolverChoice, use_fast_path: bool) -> bool:
    return use_fast_path and choice.name == "highs" and fast_path_applies(problem)


def _guarded(
    problem: TransportProblem, solve: Callable[[], TransportSolution]
) -> TransportSolution:
    try:
        return solve()
    except Exception as exc:  # solver crash: reported as a status, not raised
        return TransportSolution(
            problem.group,
            SolveStatus.ERROR,
            np.zeros(problem.n_arcs),
            explanation=f"{problem.group}: solver error: {exc}",
        )


def _solve_fast_guarded(problem: TransportProblem, choice: SolverChoice) -> TransportSolution:
    return _guarded(problem, lambda: solve_fast(problem, choice.time_limit_s))


def _after_fast(
    problem: TransportProblem, choice: SolverChoice, solution: TransportSolution
) -> TransportSolution:
    if solution.status is SolveStatus.INFEASIBLE:
        return _guarded(problem, lambda: explain_infeasible(problem, choice, solution))
    return solution


def solve_transport(
    problem: TransportProblem, choice: SolverChoice, use_fast_path: bool = True
) -> TransportSolution:
    """Lexicographic optimum of one problem; never raises for solver trouble."""
    if _uses_fast_path(problem, choice, use_fast_path):
        solution = _guarded(problem, lambda: solve_fast(problem, choice.time_limit_s))
        return _after_fast(problem, choice, solution)
    return _guarded(problem, lambda: solve_lexicographic(problem, choice))


def solve_transports(
    problems: Sequence[TransportProblem],
    choice: SolverChoice,
    use_fast_path: bool = True,
    workers: int | None = None,
) -> list[TransportSolution]:
    """Solutions of independent problems, in input order.

    Fast-path LPs run in ``workers`` threads (default: usable cores); the reduced LPs
    of complete problems are built and stacked in the calling thread first, so a
    thread only runs highspy (which releases the GIL). PuLP models and infeasibility
    explanations run one after another in the calling thread.
    """
    workers = default_workers() if workers is None else max(1, workers)
    fast = [i for i, p in enumerate(problems) if _uses_fast_path(p, choice, use_fast_path)]
    reductions: dict[int, TierReduction] = {}
    for i in fast:
        reduction = reduce_tiers(problems[i]) if problems[i].n_arcs > 0 else None
        if reduction is not None:
            reductions[i] = reduction
    batches = _batches(fast, reductions)
    jobs: list[Callable[[], list[TransportSolution]]] = []
    for batch in batches:
        if batch[0] in reductions:
            jobs.append(_reduced_job(problems, batch, reductions, choice))
        else:
            jobs.append(partial(_staged_job, problems[batch[0]], choice))
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            results = list(pool.map(lambda job: job(), jobs))
    else:
        results = [job() for job in jobs]
    solved: dict[int, TransportSolution] = {}
    for batch, result in zip(batches, results, strict=True):
        solved.update(zip(batch, result, strict=True))
    return [
        _after_fast(p, choice, solved[i])
        if i in solved
        else solve_transport(p, choice, use_fast_path)
        for i, p in enumerate(problems)
    ]


def _staged_job(problem: TransportProblem, choice: SolverChoice) -> list[TransportSolution]:
    return [_solve_fast_guarded(problem, choice)]


def _reduced_job(
    problems: Sequence[TransportProblem],
    batch: list[int],
    reductions: dict[int, TierReduction],
    choice: SolverChoice,
) -> Callable[[], list[TransportSolution]]:
    """A stacked reduced LP (stacked here, in the calling thread), solved when called."""
    members = [problems[i] for i in batch]
    parts = [reductions[i] for i in batch]
    lp: LpArrays = stack([r.lp for r in parts])

    def alone() -> list[TransportSolution]:
        return [
            _guarded(p, partial(solve_reduced, p, r, choice.time_limit_s))
            for p, r in zip(members, parts, strict=True)
        ]

    def job() -> list[TransportSolution]:
        try:
            status, values = run_lp(lp, choice.time_limit_s)
        except Exception:  # solved one by one, errors reported per problem
            return alone()
        if status is SolveStatus.OPTIMAL and values is not None:
            return split_stacked(members, parts, values)
        if len(members) == 1:
            return [reduced_outcome(members[0], parts[0], status, values)]
        return alone()  # statuses and explanations stay per problem

    return job


def _batches(fast: list[int], reductions: dict[int, TierReduction]) -> list[list[int]]:
    """Fast-path problems grouped in input order: consecutive complete problems whose
    reduced LPs are small share a block LP of at most ``BATCH_COLUMNS`` columns, every
    other one is alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    columns = 0
    for i in fast:
        reduction = reductions.get(i)
        n = reduction.lp.n_cols if reduction is not None else 0
        if reduction is None or n > BATCH_COLUMNS:
            batches.append([i])
            continue
        if current and columns + n > BATCH_COLUMNS:
            batches.append(current)
            current, columns = [], 0
        current.append(i)
        columns += n
    if current:
        batches.append(current)
    return batches
