"""Reallocation: each constraint family satisfied and violated, tiers, infeasibility."""

from __future__ import annotations

import pytest

from protocols.decisions import TransferOrder
from protocols.invariants import check_decision, check_donors, check_receivers, check_tier_priority
from protocols.run import solve
from protocols.status import SolveStatus
from tests.protocols.helpers import protocol, scenario

SOLVERS = ["highs", "cbc"]


def _given(result, partner):
    return sum(t.quantity for t in result.decision.transfers if t.from_partner == partner)


def _got(result, partner):
    return sum(t.quantity for t in result.decision.transfers if t.to_partner == partner)


def _bad_transfer(result, **changes):
    t = result.decision.transfers[0]
    return result.decision.model_copy(
        update={"transfers": [t.model_copy(update=changes), *result.decision.transfers[1:]]}
    )


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fast", [True, False])
def test_supply_share_cap_binds_and_is_respected(solver, fast):
    # donor surplus 100, share 0.5 -> may give 50 although the need is 80
    sc = scenario([("donor", 150, 50, 0.5, 10.0)], [("hosp", 1, 80, 10.5)])
    r = solve(protocol(), sc, solver=solver, use_fast_path=fast)
    assert r.decision.status is SolveStatus.OPTIMAL
    assert _given(r, "donor") == pytest.approx(50)
    assert r.violations == []


def test_supply_violation_is_detected():
    sc = scenario([("donor", 150, 50, 0.5, 10.0)], [("hosp", 1, 80, 10.5)])
    r = solve(protocol(), sc)
    bad = _bad_transfer(r, quantity=60.0)
    problems = check_donors(sc, bad)
    assert problems and problems[0].startswith("supply:")


def test_safety_stock_never_touched_even_with_full_share():
    sc = scenario([("donor", 70, 50, 1.0, 10.0)], [("hosp", 1, 80, 10.5)])
    r = solve(protocol(), sc)
    assert _given(r, "donor") == pytest.approx(20)
    bad = _bad_transfer(r, quantity=30.0)
    assert any("safety stock" in p for p in check_donors(sc, bad))


def test_donor_below_safety_gives_nothing():
    sc = scenario([("donor", 40, 50, 1.0, 10.0)], [("hosp", 1, 80, 10.5)])
    r = solve(protocol(), sc)
    assert r.decision.transfers == []
    assert r.decision.unmet_by_tier == {1: 80.0}


@pytest.mark.parametrize("solver", SOLVERS)
def test_demand_cap_binds_and_is_respected(solver):
    sc = scenario([("donor", 500, 0, 1.0, 10.0)], [("hosp", 1, 80, 10.5), ("norm", 3, 30, 11)])
    r = solve(protocol(), sc, solver=solver)
    assert _got(r, "hosp") == pytest.approx(80)
    assert _got(r, "norm") == pytest.approx(30)
    bad = _bad_transfer(r, quantity=r.decision.transfers[0].quantity + 5)
    fulfilment = [
        f.model_copy(update={"fulfilled": f.fulfilled + 5})
        if f.need_id == bad.transfers[0].need_id
        else f
        for f in bad.fulfilment
    ]
    assert check_receivers(bad.model_copy(update={"fulfilment": fulfilment}))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fast", [True, False])
def test_strict_tier_priority_beats_transport_cost(solver, fast):
    # the normal partner sits next to the donor, the hospital far away: tier wins
    sc = scenario(
        [("donor", 100, 0, 1.0, 10.0)],
        [("far-hosp", 1, 70, 14.0), ("near-norm", 3, 70, 10.01), ("mid-crit", 2, 20, 12.0)],
    )
    r = solve(protocol(), sc, solver=solver, use_fast_path=fast)
    assert _got(r, "far-hosp") == pytest.approx(70)
    assert _got(r, "mid-crit") == pytest.approx(20)
    assert _got(r, "near-norm") == pytest.approx(10)
    assert r.decision.unmet_by_tier == {1: 0.0, 2: 0.0, 3: pytest.approx(60)}


def test_tier_priority_violation_is_detected():
    sc = scenario(
        [("donor", 100, 0, 1.0, 10.0)], [("far-hosp", 1, 70, 14.0), ("near-norm", 3, 70, 10.01)]
    )
    p = protocol()
    r = solve(p, sc)
    swapped = []
    for t in r.decision.transfers:  # give everything to the normal partner instead
        swapped.append(t)
    wrong = [
        TransferOrder(
            **{
                **swapped[0].model_dump(),
                "to_partner": "near-norm",
                "need_id": "need-near-norm",
                "quantity": 70.0,
            }
        ),
    ]
    fulfil = [
        f.model_copy(update={"fulfilled": 70.0 if f.partner_id == "near-norm" else 0.0})
        for f in r.decision.fulfilment
    ]
    bad = r.decision.model_copy(update={"transfers": wrong, "fulfilment": fulfil})
    problems = check_tier_priority(sc, p.optimization, p.scope, bad)
    assert problems and all(x.startswith("tier_priority") for x in problems)


@pytest.mark.parametrize("fast", [True, False])
def test_least_transport_cost_among_equal_fulfilment(fast):
    sc = scenario(
        [("near", 100, 0, 1.0, 10.1), ("far", 100, 0, 1.0, 14.0)], [("hosp", 1, 60, 10.0)]
    )
    r = solve(protocol(), sc, use_fast_path=fast)
    assert _given(r, "near") == pytest.approx(60)
    assert _given(r, "far") == pytest.approx(0)


def test_fairness_raises_lowest_fill_ratio_first():
    sc = scenario(
        [("donor", 100, 0, 1.0, 10.0)], [("h-near", 1, 100, 10.1), ("h-far", 1, 100, 13.0)]
    )
    plain = solve(protocol(), sc)
    fair = solve(protocol(fairness=True), sc)
    assert _got(plain, "h-near") == pytest.approx(100)  # cheapest: all to the near one
    assert _got(fair, "h-near") == pytest.approx(50)
    assert _got(fair, "h-far") == pytest.approx(50)
    assert fair.violations == []


@pytest.mark.parametrize("solver", SOLVERS)
def test_pack_sizes_and_min_shipments_make_it_a_milp(solver):
    sc = scenario(
        [("donor", 95, 0, 1.0, 10.0)],
        [("hosp", 1, 64, 10.5), ("norm", 3, 40, 11)],
        material={"pack_size": 10, "min_shipment": 30},
    )
    r = solve(protocol(pack_sizes=True, min_shipments=True), sc, solver=solver)
    assert r.decision.status is SolveStatus.OPTIMAL
    qty = sorted(t.quantity for t in r.decision.transfers)
    assert all(q % 10 == pytest.approx(0) and q >= 30 for q in qty)
    assert _got(r, "hosp") == pytest.approx(60)  # 64 is not a whole number of packs
    assert _got(r, "norm") == pytest.approx(30)  # 35 left, but only 30 fits in packs
    continuous = solve(protocol(), sc, solver=solver)
    assert _got(continuous, "hosp") == pytest.approx(64)  # the lot rule is what binds


def test_max_distance_restricts_lanes():
    sc = scenario([("donor", 100, 0, 1.0, 10.0)], [("near", 3, 10, 10.5), ("far", 3, 10, 14.0)])
    r = solve(protocol(max_distance_km=100), sc)
    assert _got(r, "near") == pytest.approx(10)
    assert _got(r, "far") == 0
    assert r.violations == []


@pytest.mark.parametrize("fast", [True, False])
def test_no_lane_in_reach_is_an_optimal_decision_without_transfers(fast):
    """Every need out of reach: no transfer at all. The invariant checks used to index
    the empty per-donor sums and crash the run (IndexError) instead of reporting it."""
    sc = scenario([("donor", 100, 0, 1.0, 10.0)], [("far", 1, 10, 14.0)])
    r = solve(protocol(max_distance_km=1), sc, use_fast_path=fast)
    assert r.decision.transfers == []
    assert r.decision.status is SolveStatus.OPTIMAL
    assert r.decision.unmet_by_tier == {1: 10}
    assert r.violations == []


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fast", [True, False])
def test_infeasible_min_fill_explains_conflicting_rules(solver, fast):
    sc = scenario([("donor", 150, 50, 0.5, 10.0)], [("hosp", 1, 100, 10.5)])
    p = protocol(min_fill=[{"tier": 1, "fraction": 0.9}])
    r = solve(p, sc, solver=solver, use_fast_path=fast)
    assert r.decision.status is SolveStatus.INFEASIBLE
    assert not r.decision.proven_optimal
    group = r.decision.groups[0]
    assert group.conflicting_rules == [
        "donors give at most their agreed share of stock above safety stock",
        "hospital (tier 1) needs filled to at least 90%",
    ]
    assert "requires 90 pcs" in r.decision.explanation
    assert "at most 50 pcs" in r.decision.explanation
    assert r.decision.transfers == []


def test_min_fill_satisfied_case():
    sc = scenario([("donor", 150, 50, 1.0, 10.0)], [("hosp", 1, 100, 10.5), ("nn", 3, 50, 11)])
    r = solve(protocol(min_fill=[{"tier": 1, "fraction": 0.9}]), sc)
    assert r.decision.status is SolveStatus.OPTIMAL
    assert _got(r, "hosp") == pytest.approx(100)


def test_time_limit_is_a_status_not_an_exception():
    from protocols.generate import generate_scenario

    sc = generate_scenario(30, 3, seed=3, capacity=False, purchasing=False)
    p = protocol(pack_sizes=True, min_shipments=True, solver={"time_limit_s": 0.01})
    r = solve(p, sc)
    assert r.decision.status in (SolveStatus.TIME_LIMIT, SolveStatus.OPTIMAL, SolveStatus.ERROR)
    if r.decision.status is SolveStatus.TIME_LIMIT:
        assert not r.decision.proven_optimal
        assert "not proven optimal" in r.decision.explanation


def test_invariants_run_after_every_solve_on_generated_instance():
    from protocols.generate import generate_scenario

    sc = generate_scenario(25, 8, seed=5)
    for params in ({}, {"fairness": True}, {"max_distance_km": 200}):
        p = protocol(**params)
        r = solve(p, sc)
        assert r.decision.status is SolveStatus.OPTIMAL
        assert r.violations == []
        assert check_decision(sc, p.optimization, p.scope, r.decision) == []


def test_order_sums_and_unmet_per_tier_equal_plain_loops():
    from collections import defaultdict

    import numpy as np

    from protocols.generate import generate_scenario
    from protocols.invariants import OrderSums, check_conservation, unmet_by_tier

    sc = generate_scenario(25, 8, seed=6)
    r = solve(protocol(), sc)
    d = r.decision
    unmet: dict[int, float] = defaultdict(float)
    for f in d.fulfilment:
        unmet[f.tier] += f.unmet
    assert unmet_by_tier(d) == {t: float(np.round(v, 6)) for t, v in sorted(unmet.items())}
    # a need id twice (one entry per problem it is in): both entries see the id's receipts
    t = d.transfers[0]
    twice = d.fulfilment + [
        f.model_copy(update={"fulfilled": 0.0}) for f in d.fulfilment if f.need_id == t.need_id
    ]
    sums = OrderSums.of(d.model_copy(update={"fulfilment": twice}))
    given: dict[tuple[str, str, str], float] = defaultdict(float)
    received: dict[str, float] = defaultdict(float)
    for o in d.transfers:
        given[o.from_partner, o.from_site, o.material_id] += o.quantity
        received[o.need_id] += o.quantity
    assert dict(zip(sums.donors, sums.given.tolist(), strict=True)) == given
    assert sums.received.tolist() == [received.get(f.need_id, 0.0) for f in twice]
    found = check_conservation(d.model_copy(update={"fulfilment": twice}))
    assert found == [
        f"conservation: need {t.need_id} fulfilled 0 but orders deliver {received[t.need_id]:g}"
    ]


@pytest.mark.parametrize("fast", [True, False])
def test_positions_below_safety_stock_are_needs_only_if_the_protocol_says_so(fast):
    # "low" holds 10 of a safety stock of 40: a shortfall of 30 (tier of its partner)
    sc = scenario(
        [("donor", 200, 50, 1.0, 10.0), ("low", 10, 40, 1.0, 10.4)], [("hosp", 1, 80, 10.5)]
    )
    plain = solve(protocol(), sc, use_fast_path=fast)
    assert _got(plain, "low") == 0.0
    assert [f.need_id for f in plain.decision.fulfilment] == ["need-hosp"]
    with_shortfalls = solve(protocol(include_position_shortfalls=True), sc, use_fast_path=fast)
    assert with_shortfalls.decision.status is SolveStatus.OPTIMAL
    assert with_shortfalls.violations == []
    fills = {f.need_id: f for f in with_shortfalls.decision.fulfilment}
    assert set(fills) == {"need-hosp", "shortfall-low-s-MAT"}
    assert fills["shortfall-low-s-MAT"].requested == pytest.approx(30)
    assert fills["shortfall-low-s-MAT"].fulfilled == pytest.approx(30)
    assert _got(with_shortfalls, "low") == pytest.approx(30)
    assert _given(with_shortfalls, "low") == 0.0  # below safety stock: never a donor
