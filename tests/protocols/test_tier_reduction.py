"""The reduced LP of complete problems against the stage-by-stage paths (highspy and PuLP)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.dispatch import solve_transports
from protocols.fastlp import solve_fast, solve_staged
from protocols.pulp_model import solve_lexicographic
from protocols.run import solve
from protocols.solvers import SolverChoice
from protocols.status import SolveStatus
from protocols.tier_reduction import reduce_tiers
from protocols.transport import (
    Sink,
    Source,
    TransportOptions,
    TransportProblem,
    TransportSolution,
    Vocabulary,
)
from tests.protocols.helpers import protocol, scenario
from tests.protocols.test_properties import reference_lexicographic

WORDS = Vocabulary(supply="s", demand="d", lanes="l", unit="u")
DUE = date(2026, 11, 25)

# Degenerate values on purpose: empty donors, zero needs, equal costs, equal totals.
# Quantities and unit costs with at most 3 decimals: a need below the solvers' primal
# feasibility tolerance (~1e-7) is reported infeasible by the PuLP path (see
# test_tiny_quantities_on_the_fast_path), and cost differences below the dual
# tolerance (1e-7 per unit) are ties for every path.
amount_st = st.floats(0.0, 100.0).map(lambda x: round(x, 3))
capacity_st = st.one_of(st.sampled_from([0.0, 5.0, 10.0, 30.0]), amount_st)
demand_st = st.one_of(st.sampled_from([0.0, 5.0, 10.0, 30.0]), amount_st)
cost_st = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0]), st.floats(0.0, 50.0).map(lambda x: round(x, 3))
)


@st.composite
def problems(draw: st.DrawFn, complete: bool = True) -> TransportProblem:
    caps = draw(st.lists(capacity_st, min_size=0, max_size=5))
    sinks = draw(st.lists(st.tuples(demand_st, st.integers(1, 3)), min_size=1, max_size=5))
    pairs = [(i, j) for i in range(len(caps)) for j in range(len(sinks))]
    if not complete and pairs:
        keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
        pairs = [p for p, k in zip(pairs, keep, strict=True) if k]
    costs = draw(st.lists(cost_st, min_size=len(pairs), max_size=len(pairs)))
    return TransportProblem(
        "MAT",
        tuple(Source(f"d{i}", "s", c) for i, c in enumerate(caps)),
        tuple(Sink(f"n{j}", f"r{j}", "s", d, t, DUE) for j, (d, t) in enumerate(sinks)),
        np.array([i for i, _ in pairs], dtype=np.int64),
        np.array([j for _, j in pairs], dtype=np.int64),
        np.array(costs, dtype=np.float64),
        TransportOptions(),
        WORDS,
    )


def objective(problem: TransportProblem, solution: TransportSolution) -> list[float]:
    """(delivered to tier 1, 2, 3, cost) of a solution."""
    inflow = solution.inflow(problem)
    delivered = [float(inflow[problem.sink_tier == t].sum()) for t in (1, 2, 3)]
    return [*delivered, solution.cost(problem)]


def assert_feasible(problem: TransportProblem, solution: TransportSolution) -> None:
    assert (solution.flows >= 0).all()
    assert (solution.outflow(problem) <= problem.capacity + 1e-6 * (1 + problem.capacity)).all()
    assert (solution.inflow(problem) <= problem.demand + 1e-6 * (1 + problem.demand)).all()


def assert_same_optimum(a: list[float], b: list[float], scale: float) -> None:
    for x, y in zip(a[:3], b[:3], strict=True):
        assert x == pytest.approx(y, abs=1e-6 * max(1.0, scale))
    assert a[3] == pytest.approx(b[3], rel=1e-6, abs=1e-6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_reduced_lp_has_the_stage_by_stage_optimum(problem):
    reduction = reduce_tiers(problem)
    assert (reduction is not None) == (problem.n_arcs > 0)  # complete, no minimum fill
    reduced = solve_fast(problem, 60.0)
    staged = solve_staged(problem, 60.0)
    pulp = solve_lexicographic(problem, SolverChoice("highs"))
    assert reduced.status is staged.status is pulp.status is SolveStatus.OPTIMAL
    if problem.n_arcs:
        assert reduced.method == "highspy/closed-form tiers"
    assert_feasible(problem, reduced)
    scale = float(problem.demand.sum())
    mine = objective(problem, reduced)
    assert_same_optimum(mine, objective(problem, staged), scale)
    assert_same_optimum(mine, objective(problem, pulp), scale)
    # the closed-form tier maxima are what the stages found
    for tier, value in (reduction.targets if reduction else {}).items():
        assert value == pytest.approx(mine[tier - 1], abs=1e-6 * max(1.0, scale))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(problems(complete=False), min_size=1, max_size=6))
def test_stacked_and_threaded_solutions_equal_the_staged_path(batch):
    together = solve_transports(batch, SolverChoice("highs"), workers=2)
    for problem, solution in zip(batch, together, strict=True):
        alone = solve_staged(problem, 60.0) if problem.n_arcs else solution
        assert solution.status is alone.status is SolveStatus.OPTIMAL
        assert_feasible(problem, solution)
        scale = float(problem.demand.sum())
        assert_same_optimum(objective(problem, solution), objective(problem, alone), scale)


@pytest.mark.parametrize("tiny", [6e-8, 1e-6, 1e-3])
def test_tiny_quantities_on_the_fast_path(tiny):
    problem = TransportProblem(
        "MAT",
        (Source("d0", "s", 1.0),),
        (Sink("n0", "r0", "s", tiny, 1, DUE), Sink("n1", "r1", "s", tiny, 2, DUE)),
        np.array([0, 0], dtype=np.int64),
        np.array([0, 1], dtype=np.int64),
        np.array([0.0, 1.0]),
        TransportOptions(),
        WORDS,
    )
    reduced, staged = solve_fast(problem, 60.0), solve_staged(problem, 60.0)
    assert reduced.status is staged.status is SolveStatus.OPTIMAL
    assert_feasible(problem, reduced)
    # exact up to HiGHS' primal feasibility tolerance (1e-7)
    assert objective(problem, reduced)[:3] == pytest.approx([tiny, tiny, 0.0], abs=2e-7)
    assert objective(problem, staged)[:3] == pytest.approx([tiny, tiny, 0.0], abs=2e-7)


def test_incomplete_or_min_fill_problems_keep_the_stages():
    complete = TransportProblem(
        "MAT",
        (Source("a", "s", 10.0), Source("b", "s", 5.0)),
        (Sink("n", "r", "s", 8.0, 1, DUE),),
        np.array([0], dtype=np.int64),  # b has no lane
        np.array([0], dtype=np.int64),
        np.array([1.0]),
        TransportOptions(),
        WORDS,
    )
    assert reduce_tiers(complete) is None
    fill = TransportProblem(
        "MAT",
        (Source("a", "s", 10.0),),
        (Sink("n", "r", "s", 8.0, 1, DUE),),
        np.array([0], dtype=np.int64),
        np.array([0], dtype=np.int64),
        np.array([1.0]),
        TransportOptions(min_fill=((1, 0.5),)),
        WORDS,
    )
    assert reduce_tiers(fill) is None


def test_supply_short_marginal_tier_and_later_tiers():
    # 30 units for tier 1 (10), tier 2 (25), tier 3 (20): tier 2 is marginal, tier 3 gets 0
    problem = TransportProblem(
        "MAT",
        (Source("a", "s", 12.0), Source("b", "s", 18.0)),
        (
            Sink("n1", "r1", "s", 10.0, 1, DUE),
            Sink("n2", "r2", "s", 15.0, 2, DUE),
            Sink("n3", "r3", "s", 10.0, 2, DUE),
            Sink("n4", "r4", "s", 20.0, 3, DUE),
        ),
        np.repeat(np.arange(2), 4).astype(np.int64),
        np.tile(np.arange(4), 2).astype(np.int64),
        np.array([5.0, 1.0, 2.0, 0.0, 1.0, 3.0, 1.0, 0.0]),
        TransportOptions(),
        WORDS,
    )
    reduction = reduce_tiers(problem)
    assert reduction is not None
    assert reduction.targets == {1: 10.0, 2: 20.0, 3: 0.0}
    assert reduction.lp.n_cols == 6  # tier 3's lanes are not columns
    solution = solve_fast(problem, 60.0)
    assert objective(problem, solution)[:3] == pytest.approx([10.0, 20.0, 0.0])
    assert_same_optimum(
        objective(problem, solution), objective(problem, solve_staged(problem, 60.0)), 55
    )


donor_st = st.tuples(
    st.sampled_from([0.0, 50.0, 80.0, 150.0, 300.0]),  # on hand
    st.sampled_from([0.0, 50.0, 80.0]),  # safety stock (may equal on hand)
    st.sampled_from([0.0, 0.5, 1.0]),  # share (0: no surplus to give)
    st.sampled_from([8.0, 9.0, 10.0]),  # longitude: equal distances tie costs
)
need_st = st.tuples(
    st.integers(1, 3), st.sampled_from([10.0, 50.0, 100.0]), st.sampled_from([8.0, 10.0, 12.0])
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(donor_st, min_size=1, max_size=5), st.lists(need_st, min_size=1, max_size=5))
def test_degenerate_scenarios_fast_path_equals_independent_lp(donors, needs):
    d = [(f"d{i}", oh, ss, sh, lon) for i, (oh, ss, sh, lon) in enumerate(donors)]
    n = [(f"n{j}", tier, q, lon) for j, (tier, q, lon) in enumerate(needs)]
    sc = scenario(d, n)
    ref_unmet, ref_cost = reference_lexicographic(d, n)
    fast = solve(protocol(), sc, use_fast_path=True)
    assert fast.decision.status is SolveStatus.OPTIMAL
    assert fast.violations == []
    for tier, value in ref_unmet.items():
        assert fast.decision.unmet_by_tier.get(tier, 0.0) == pytest.approx(value, abs=1e-4)
    assert fast.decision.total_cost == pytest.approx(ref_cost, rel=1e-6, abs=1e-3)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_pulp_path_when_supply_exactly_covers_the_higher_tiers(solver):
    # found by test_degenerate_scenarios_...: 150 surplus, tier 1 50, tier 2 100, tier 3 10.
    # The PuLP path used to fix tier 3 at the 1.5e-7 its stage took from the fixing slack
    # of tiers 1-2, and HiGHS declared the cost LP infeasible (see protocols.pulp_model).
    sc = scenario(
        [("d0", 150.0, 0.0, 1.0, 8.0)],
        [("n0", 1, 50.0, 8.0), ("n1", 2, 100.0, 8.0), ("n2", 3, 10.0, 8.0)],
    )
    fast = solve(protocol(), sc)
    assert fast.decision.status is SolveStatus.OPTIMAL
    assert fast.decision.unmet_by_tier == {1: 0.0, 2: 0.0, 3: 10.0}
    slow = solve(protocol(), sc, solver=solver, use_fast_path=False)
    assert slow.decision.status is SolveStatus.OPTIMAL
    assert slow.violations == []
    assert slow.decision.unmet_by_tier == {1: 0.0, 2: 0.0, 3: 10.0}
    assert slow.decision.total_cost == pytest.approx(fast.decision.total_cost, abs=1e-6)


def _batch_problems():
    from protocols.generate import generate_scenario
    from protocols.reallocation import build_problems

    sc = generate_scenario(20, 8, seed=9, capacity=False, purchasing=False)
    p = protocol()
    return [m.problem for m in build_problems(sc, p.optimization, p.scope)]


def test_a_stack_highs_refuses_is_solved_one_by_one(monkeypatch):
    import protocols.dispatch as dispatch

    problems = _batch_problems()
    reference = solve_transports(problems, SolverChoice("highs"), workers=1)

    def refuse(*_args: object) -> None:
        raise RuntimeError("HiGHS refused the model")

    monkeypatch.setattr(dispatch, "prepare_lp", refuse)
    again = solve_transports(problems, SolverChoice("highs"), workers=2)
    for problem, a, b in zip(problems, again, reference, strict=True):
        assert a.status is b.status is SolveStatus.OPTIMAL
        assert_same_optimum(objective(problem, a), objective(problem, b), 1e4)


def test_a_stack_that_is_not_optimal_is_solved_one_by_one(monkeypatch):
    import protocols.dispatch as dispatch

    problems = _batch_problems()
    reference = solve_transports(problems, SolverChoice("highs"), workers=1)
    monkeypatch.setattr(dispatch, "lp_result", lambda _h: (SolveStatus.TIME_LIMIT, None))
    again = solve_transports(problems, SolverChoice("highs"), workers=2)
    for problem, a, b in zip(problems, again, reference, strict=True):
        assert a.status is b.status is SolveStatus.OPTIMAL
        assert_same_optimum(objective(problem, a), objective(problem, b), 1e4)


def test_duplicate_lanes_do_not_make_a_problem_look_complete():
    def problem(pairs):
        return TransportProblem(
            "MAT",
            (Source("a", "s", 10.0), Source("b", "s", 5.0)),
            (Sink("n", "r", "s", 8.0, 1, DUE), Sink("m", "q", "s", 4.0, 2, DUE)),
            np.array([i for i, _ in pairs], dtype=np.int64),
            np.array([j for _, j in pairs], dtype=np.int64),
            np.ones(len(pairs)),
            TransportOptions(),
            WORDS,
        )

    # four lanes, but (1, 1) is missing and (0, 0) is there twice
    assert reduce_tiers(problem([(0, 0), (0, 0), (0, 1), (1, 0)])) is None
    assert not problem([(0, 0), (0, 0), (0, 1), (1, 0)]).is_complete()
    assert reduce_tiers(problem([(0, 0), (0, 1), (1, 0), (1, 1), (1, 1)])) is not None
