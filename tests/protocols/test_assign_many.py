"""Orders of several materials made at once equal the orders made one material at a time."""

from __future__ import annotations

import dataclasses

import numpy as np

from protocols.dispatch import solve_transports
from protocols.generate import generate_scenario
from protocols.reallocation import MaterialProblem, assign, assign_many, build_problems
from protocols.run import solver_choice
from protocols.transport import TransportSolution
from schemas.protocol import ReallocationParameters
from tests.protocols.helpers import protocol


def _without_donors(mp: MaterialProblem) -> tuple[MaterialProblem, TransportSolution]:
    """The material with its needs but no donor (no sources, no lanes, nothing moves)."""
    none = np.zeros(0, dtype=np.int64)
    problem = dataclasses.replace(
        mp.problem, sources=(), arc_source=none, arc_sink=none, arc_cost=np.zeros(0)
    )
    empty = TransportSolution(mp.material_id, solved[0].status, np.zeros(0))
    return MaterialProblem(mp.material_id, mp.unit, problem, np.zeros(0)), empty


proto = protocol(max_distance_km=400)
scenario = generate_scenario(25, 12, seed=11, capacity=False, purchasing=False)
assert isinstance(proto.optimization, ReallocationParameters)
mps = build_problems(scenario, proto.optimization, proto.scope)
solved = solve_transports([mp.problem for mp in mps], solver_choice(proto))


def test_assign_many_equals_one_material_at_a_time() -> None:
    # a material without donors first, one in the middle and one last: the donor of an
    # order is found by its position among all materials' sources
    bare = [_without_donors(mps[k]) for k in (0, 5, len(mps) - 1)]
    batch = [bare[0], *zip(mps[1:5], solved[1:5], strict=True), bare[1]]
    batch += [*zip(mps[6:-1], solved[6:-1], strict=True), bare[2]]
    orders, fills, ends = assign_many([m for m, _ in batch], [s for _, s in batch])

    expected_orders, expected_fills, expected_ends = [], [], []
    for mp, sol in batch:
        o, f = assign(mp, sol)
        expected_orders += o
        expected_fills += f
        expected_ends.append(len(expected_orders))
    assert len(orders) > 100 and any(f.fulfilled == 0 for f in fills)
    assert [o.model_dump() for o in orders] == [o.model_dump() for o in expected_orders]
    assert [f.model_dump() for f in fills] == [f.model_dump() for f in expected_fills]
    assert ends == expected_ends
    # every material's orders are its own
    begin = 0
    for (mp, _), end in zip(batch, ends, strict=True):
        assert {o.material_id for o in orders[begin:end]} <= {mp.material_id}
        begin = end


def test_nothing_to_assign() -> None:
    assert assign_many([], []) == ([], [], [])
