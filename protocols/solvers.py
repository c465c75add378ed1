"""Solver choice (HiGHS by default, CBC as fallback) and PuLP status mapping."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import pulp

from protocols.status import SolveStatus

SOLVER_NAMES = ("highs", "cbc")


@dataclass(frozen=True)
class SolverChoice:
    name: str = "highs"
    time_limit_s: float = 60.0
    mip_gap: float = 1e-6

    def __post_init__(self) -> None:
        if self.name not in SOLVER_NAMES:
            raise ValueError(f"unknown solver {self.name!r}; choose one of {SOLVER_NAMES}")


@cache  # package metadata lookups cost ~0.4 ms; installed versions do not change in a run
def solver_version(name: str) -> str:
    if name == "highs":
        return f"highspy {metadata.version('highspy')} via pulp {pulp.__version__}"
    return f"CBC (bundled with pulp {pulp.__version__})"


def make_pulp_solver(
    choice: SolverChoice, time_limit_s: float | None = None, presolve: bool = True
) -> Any:
    """``presolve=False``: no presolve (HiGHS), no presolve and no MIP preprocessing (CBC)."""
    limit = max(0.01, time_limit_s if time_limit_s is not None else choice.time_limit_s)
    if choice.name == "highs":
        off: dict[str, Any] = {} if presolve else {"presolve": "off"}
        # no ``threads`` option: HiGHS has ONE thread scheduler per process, set up by the
        # first run (the fast path's highspy instances use the default); a later instance
        # asking for another thread count is refused ("scheduler has already been
        # initialized") and every PuLP solve after it failed
        return pulp.HiGHS(msg=False, timeLimit=limit, gapRel=choice.mip_gap, **off)
    return pulp.PULP_CBC_CMD(
        msg=False,
        timeLimit=limit,
        gapRel=choice.mip_gap,
        threads=1,
        presolve=None if presolve else False,
        options=None if presolve else ["preprocess off"],
    )


def pulp_status(problem: pulp.LpProblem) -> SolveStatus:
    """Map PuLP's (status, sol_status) pair to a :class:`SolveStatus`."""
    sol = problem.sol_status
    if sol == pulp.LpSolutionOptimal:
        return SolveStatus.OPTIMAL
    if sol == pulp.LpSolutionIntegerFeasible:
        return SolveStatus.TIME_LIMIT
    if sol == pulp.LpSolutionInfeasible or problem.status == pulp.LpStatusInfeasible:
        return SolveStatus.INFEASIBLE
    if problem.status == pulp.LpStatusOptimal:
        return SolveStatus.OPTIMAL
    return SolveStatus.ERROR
