"""Orders of several materials made at once equal the orders made one material at a time."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import orjson
import pytest

from protocols import reallocation
from protocols.decisions import TransferOrder, join_lists_json, presorted_list_json
from protocols.dispatch import Solving, solve_transports
from protocols.generate import generate_scenario
from protocols.loader import load_library
from protocols.reallocation import MaterialProblem, assign, assign_many, build_problems
from protocols.run import solve, solver_choice
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


def test_field_dicts_are_sorted_and_serialise_as_the_canonical_json() -> None:
    orders, fills, _ = assign_many(mps, solved)
    for model in [*orders, *fills]:
        assert list(vars(model)) == sorted(vars(model))
    half = len(orders) // 2
    parts = [
        presorted_list_json(orders[:half]),
        presorted_list_json([]),
        presorted_list_json(orders[half:]),
    ]
    assert all(p is not None for p in parts)
    joined = join_lists_json([p for p in parts if p is not None])
    assert joined == orjson.dumps(
        [o.model_dump(mode="json") for o in orders], option=orjson.OPT_SORT_KEYS
    )
    # a list whose first dict is in field order is refused (serialised the usual way)
    assert presorted_list_json([TransferOrder.model_validate(orders[0].model_dump())]) is None


@pytest.mark.parametrize(
    "library_id",
    [
        "bulk-material-reallocation",
        "packs-material-reallocation",
        "hospital-material-reallocation",
        "capacity-sharing",
        "joint-purchasing",
    ],
)
def test_the_recorded_decision_hash_is_the_hash_of_the_canonical_json(library_id: str) -> None:
    proto = load_library().protocols[library_id]
    sc = generate_scenario(30, 24, seed=3)
    result = solve(proto, sc)
    assert (
        result.decision.transfers
        or result.decision.capacity_assignments
        or (result.decision.purchase_shares)
    )
    expected = hashlib.sha256(result.decision.canonical_json()).hexdigest()
    assert result.record.decision_hash == expected


@pytest.mark.parametrize(
    "library_id", ["bulk-material-reallocation", "hospital-material-reallocation"]
)
def test_the_decision_does_not_depend_on_when_pending_orders_are_made(
    library_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders are made in groups of up to EXTRACT_TOGETHER materials, or earlier when
    the next solution is not ready: the same decision, record hash and checks."""
    proto = load_library().protocols[library_id]
    sc = generate_scenario(30, 24, seed=5, capacity=False, purchasing=False)
    made = reallocation.assign_many
    calls: list[int] = []

    def counted(mps, sols):
        calls.append(len(mps))
        return made(mps, sols)

    monkeypatch.setattr(reallocation, "assign_many", counted)
    results, batches = [], []
    for waits in (False, True):  # never flushed early / flushed before every material
        monkeypatch.setattr(Solving, "waits_for_solver", lambda self, i, w=waits: w)
        calls.clear()
        results.append(solve(proto, sc))
        batches.append(list(calls))
    grouped, one_by_one = results
    assert max(batches[0]) > 1 and set(batches[1]) == {1}
    assert len(grouped.decision.transfers) > 20
    assert grouped.decision == one_by_one.decision
    assert grouped.record.decision_hash == one_by_one.record.decision_hash
    assert grouped.violations == one_by_one.violations == []
