"""Lexicographic stages of the PuLP path: a later stage is never reported infeasible."""

from __future__ import annotations

from typing import Any

import numpy as np
import pulp
import pytest

import protocols.pulp_model as pulp_model
from protocols.pulp_model import solve_lexicographic
from protocols.solvers import SolverChoice
from protocols.status import SolveStatus
from protocols.transport import TransportOptions, TransportProblem
from tests.protocols.test_exact_cover import assert_same_vector, complete, make_problem
from tests.protocols.test_tier_reduction import assert_feasible, objective


def _mip_with_fairness() -> TransportProblem:
    # found by a random search over exactly covered problems: HiGHS' MIP presolve
    # (highspy 1.15.1) declared the tier-2 total stage infeasible although the plan of
    # the tier-2 fairness stage satisfies all its rows exactly
    pairs = [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    pairs += [(2, 1), (2, 2), (2, 4)]
    return make_problem(
        [64.375, 30.608, 30.017],
        [(0.0, 1), (10.0, 3), (5.0, 1), (10.0, 3), (100.0, 2)],
        pairs,
        [1.0, 0.0, 1.0, 3.419, 40.973, 0.0, 0.0, 46.717, 43.446, 1.0, 40.964, 0.0, 0.0],
        TransportOptions(fairness=True, step=1.0, min_lot=2.0),
    )


def _mip_with_fairness_cbc() -> TransportProblem:
    # found the same way: CBC's MIP preprocessing declared the tier-3 fairness stage
    # infeasible, although z = 0 with the previous plan satisfies it
    return make_problem(
        [34.926, 36.578, 33.497],
        [(10.0, 3), (0.0, 3), (100.0, 2), (5.0, 2)],
        complete(3, 4),
        [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 30.565, 1.0, 46.872, 1.0, 10.001],
        TransportOptions(fairness=True, step=1.0),
    )


@pytest.mark.parametrize(
    ("make", "tiers_1_2"),
    [(_mip_with_fairness, [5.0, 100.0]), (_mip_with_fairness_cbc, [0.0, 103.0])],
)
def test_mip_stage_misjudged_by_presolve_is_solved_by_both_solvers(make, tiers_1_2):
    problem = make()
    highs = solve_lexicographic(problem, SolverChoice("highs"))
    cbc = solve_lexicographic(problem, SolverChoice("cbc"))
    assert highs.status is cbc.status is SolveStatus.OPTIMAL
    assert_feasible(problem, highs)
    assert_feasible(problem, cbc)
    assert_same_vector(objective(problem, highs), objective(problem, cbc), problem)
    assert objective(problem, highs)[:2] == pytest.approx(tiers_1_2)


def _problem() -> TransportProblem:
    return make_problem(
        [150.0], [(50.0, 1), (100.0, 2), (10.0, 3)], complete(1, 3), [1.0, 2.0, 3.0]
    )


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_a_later_stage_reported_infeasible_is_solved_again_without_presolve(monkeypatch, solver):
    real = pulp_model._solve
    calls: list[bool] = []

    def misjudge_stage_two(*args: Any, presolve: bool = True) -> SolveStatus:
        calls.append(presolve)
        status = real(*args, presolve=presolve)
        return SolveStatus.INFEASIBLE if len(calls) == 2 else status

    monkeypatch.setattr(pulp_model, "_solve", misjudge_stage_two)
    solution = solve_lexicographic(_problem(), SolverChoice(solver))
    assert solution.status is SolveStatus.OPTIMAL
    assert calls == [True, True, False, True, True]  # tiers 1, 2 (again), 3, cost
    assert objective(_problem(), solution) == pytest.approx([50.0, 100.0, 0.0, 250.0])


def test_a_later_stage_infeasible_without_presolve_too_is_a_solver_error(monkeypatch):
    real = pulp_model._solve
    calls: list[bool] = []

    def misjudge_later_stages(model: Any, *args: Any, presolve: bool = True) -> SolveStatus:
        calls.append(presolve)
        status = real(model, *args, presolve=presolve)
        if len(calls) == 1:
            return status
        model.lp.status = pulp.LpStatusInfeasible
        return SolveStatus.INFEASIBLE

    monkeypatch.setattr(pulp_model, "_solve", misjudge_later_stages)
    problem = _problem()
    solution = solve_lexicographic(problem, SolverChoice("highs"))
    # not "infeasible" with made-up conflicting rules: the tier-1 plan satisfies stage 2
    assert solution.status is SolveStatus.ERROR
    assert solution.conflicting == ()
    assert "not a conflict of rules" in solution.explanation
    assert calls == [True, True, False]
    assert np.all(solution.flows == 0.0)


def test_an_infeasible_first_stage_is_still_explained():
    # the minimum fill of tier 1 needs 80 units, 50 are available: a conflict of rules
    problem = make_problem(
        [50.0],
        [(100.0, 1), (10.0, 2)],
        complete(1, 2),
        [1.0, 1.0],
        TransportOptions(min_fill=((1, 0.8),)),
    )
    solution = solve_lexicographic(problem, SolverChoice("highs"))
    assert solution.status is SolveStatus.INFEASIBLE
    assert "min_fill" in solution.conflicting
