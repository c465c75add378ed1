"""Invariants checked batch by batch during the run give the whole decision's check."""

from __future__ import annotations

from itertools import groupby

import pytest

from protocols import reallocation
from protocols.batch_checks import BatchChecks
from protocols.decisions import Decision
from protocols.generate import generate_scenario
from protocols.invariants import check_decision
from protocols.loader import load_library
from protocols.run import solve
from protocols.status import SolveStatus


@pytest.fixture(scope="module")
def case():
    proto = load_library().protocols["bulk-material-reallocation"]
    sc = generate_scenario(14, 6, seed=3, capacity=False, purchasing=False)
    result = solve(proto, sc)
    assert result.decision.status is SolveStatus.OPTIMAL and result.violations == []
    problems = reallocation.build_problems(sc, proto.optimization, proto.scope)
    return proto, sc, result.decision, problems


def _corrupted(decision: Decision) -> Decision:
    """Every family broken somewhere: the first order of each material tripled (its
    donor over its share and below safety stock, deliveries not as fulfilled; donors in
    another order than their materials), the orders of the last material dropped
    (unmet needs next to spare donors) and a need fulfilled beyond its quantity."""
    last_material = decision.transfers[-1].material_id
    transfers = []
    for material, orders in groupby(decision.transfers, key=lambda t: t.material_id):
        if material != last_material:
            first, *rest = orders
            transfers += [first.model_copy(update={"quantity": 3 * first.quantity}), *rest]
    over = decision.fulfilment[0]
    fills = [over.model_copy(update={"fulfilled": over.requested + 7}), *decision.fulfilment[1:]]
    return decision.model_copy(update={"transfers": transfers, "fulfilment": fills})


def _checked_in_batches(sc, proto, decision, problems, size):
    checks = BatchChecks(sc, proto.optimization)
    by_material = {
        m: list(orders) for m, orders in groupby(decision.transfers, key=lambda t: t.material_id)
    }
    by_item = {m: list(fills) for m, fills in groupby(decision.fulfilment, key=lambda f: f.item)}
    for start in range(0, len(problems), size):
        batch = problems[start : start + size]
        checks.add(
            batch,
            [t for mp in batch for t in by_material.get(mp.material_id, [])],
            [f for mp in batch for f in by_item.get(mp.material_id, [])],
        )
    return checks


@pytest.mark.parametrize("size", [1, 2, 4])
def test_batches_give_the_violations_of_the_whole_check_in_its_order(case, size):
    proto, sc, decision, problems = case
    bad = _corrupted(decision)
    whole = check_decision(sc, proto.optimization, proto.scope, bad, problems)
    assert {v.split(":")[0] for v in whole} == {
        "supply",
        "demand",
        "conservation",
        "tier_priority",
    }
    donors = [v.split()[1].split("/") for v in whole if v.startswith("supply")]
    materials = [material for _, _, material in donors]
    assert donors == sorted(donors) and materials != sorted(materials)  # not batch order
    checks = _checked_in_batches(sc, proto, bad, problems, size)
    assert checks.result(bad) == whole
    assert checks.seconds > 0


def test_tier_priority_only_counts_for_a_proven_optimal_decision(case):
    proto, sc, decision, problems = case
    bad = _corrupted(decision).model_copy(
        update={"status": SolveStatus.TIME_LIMIT, "proven_optimal": False}
    )
    whole = check_decision(sc, proto.optimization, proto.scope, bad, problems)
    assert whole and not any(v.startswith("tier_priority") for v in whole)
    assert _checked_in_batches(sc, proto, bad, problems, 2).result(bad) == whole


def test_a_decision_other_than_the_checked_batches_is_left_to_the_whole_check(case):
    proto, sc, decision, problems = case
    checks = _checked_in_batches(sc, proto, decision, problems, 2)
    assert checks.result(decision) == []
    copied = [t.model_copy() for t in decision.transfers]  # equal, but not what was checked
    for other in (
        decision.model_copy(update={"transfers": decision.transfers[:-1]}),
        decision.model_copy(update={"transfers": copied}),
        decision.model_copy(update={"fulfilment": decision.fulfilment[::-1]}),
    ):
        assert checks.result(other) is None


def test_a_need_id_in_two_batches_is_left_to_the_whole_check(case):
    proto, sc, decision, problems = case
    fills = list(decision.fulfilment)
    last = len(fills) - 1
    fills[last] = fills[last].model_copy(update={"need_id": fills[0].need_id})
    twice = decision.model_copy(update={"fulfilment": fills})
    assert _checked_in_batches(sc, proto, twice, problems, 2).result(twice) is None


def test_a_run_reports_what_the_batches_found(case, monkeypatch):
    proto, sc, _, problems = case
    made = reallocation.assign_many

    def inflated(mps, sols):
        orders, fills, ends = made(mps, sols)
        return [o.model_copy(update={"quantity": 2 * o.quantity}) for o in orders], fills, ends

    monkeypatch.setattr(reallocation, "assign_many", inflated)
    r = solve(proto, sc)
    assert r.decision.status is SolveStatus.ERROR
    assert "Invariant violated: conservation" in r.decision.explanation
    as_solved = r.decision.model_copy(update={"status": SolveStatus.OPTIMAL})
    assert r.violations == check_decision(sc, proto.optimization, proto.scope, as_solved, problems)


def _two_batches(sc, proto, decision, problems, extra_order):
    """The decision checked in two batches (first half and second half of the materials),
    with ``extra_order`` added to the second batch; returns the checks and the decision
    that holds exactly what was checked."""
    half = len(problems) // 2
    first = {mp.material_id for mp in problems[:half]}
    orders = [
        [t for t in decision.transfers if (t.material_id in first) == side]
        for side in (True, False)
    ]
    fills = [
        [f for f in decision.fulfilment if (f.item in first) == side] for side in (True, False)
    ]
    orders[1].append(extra_order)
    checks = BatchChecks(sc, proto.optimization)
    checks.add(problems[:half], orders[0], fills[0])
    checks.add(problems[half:], orders[1], fills[1])
    made = decision.model_copy(
        update={"transfers": orders[0] + orders[1], "fulfilment": fills[0] + fills[1]}
    )
    return checks, made


def test_a_donor_or_a_need_in_two_batches_is_left_to_the_whole_check(case):
    """Each half within the donor's share, together over it: only the whole check sees it."""
    proto, sc, decision, problems = case
    first = decision.transfers[0]
    second_half = problems[len(problems) // 2].material_id
    assert first.material_id != second_half
    again = first.model_copy(update={"order_id": "tr-again"})  # same donor, later batch
    checks, made = _two_batches(sc, proto, decision, problems, again)
    assert checks.result(made) is None
    elsewhere = first.model_copy(
        update={"order_id": "tr-elsewhere", "from_partner": "p-none", "from_site": "x"}
    )  # a donor of its own, but a need of the first batch: unknown in the second
    checks, made = _two_batches(sc, proto, decision, problems, elsewhere)
    assert checks.result(made) is None
    assert check_decision(sc, proto.optimization, proto.scope, made, problems)
