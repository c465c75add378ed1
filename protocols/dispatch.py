"""Pick the solving path for a transportation problem and keep the status a value."""

from __future__ import annotations

import numpy as np

from protocols.fastlp import fast_path_applies, solve_fast
from protocols.pulp_model import explain_infeasible, solve_lexicographic
from protocols.solvers import SolverChoice
from protocols.status import SolveStatus
from protocols.transport import TransportProblem, TransportSolution


def solve_transport(
    problem: TransportProblem, choice: SolverChoice, use_fast_path: bool = True
) -> TransportSolution:
    """Lexicographic optimum of one problem; never raises for solver trouble."""
    try:
        if use_fast_path and choice.name == "highs" and fast_path_applies(problem):
            solution = solve_fast(problem, choice.time_limit_s)
            if solution.status is SolveStatus.INFEASIBLE:
                return explain_infeasible(problem, choice, solution)
            return solution
        return solve_lexicographic(problem, choice)
    except Exception as exc:  # solver crash: reported as a status, not raised
        return TransportSolution(
            problem.group,
            SolveStatus.ERROR,
            np.zeros(problem.n_arcs),
            explanation=f"{problem.group}: solver error: {exc}",
        )
