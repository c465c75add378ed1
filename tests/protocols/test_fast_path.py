"""Fast path details: threads, share index, matrix-built tier rows, invariant checks."""

from __future__ import annotations

import time

import pytest

from protocols.generate import generate_scenario, generate_scenario_data
from protocols.invariants import check_donors, check_tier_priority
from protocols.reallocation import ShareTable, build_problems, donor_share
from protocols.run import solve
from protocols.status import SolveStatus
from schemas.scenario import parse_scenario
from tests.protocols.helpers import protocol, scenario


@pytest.mark.parametrize(
    "params", [{}, {"max_distance_km": 250}, {"min_fill": [{"tier": 1, "fraction": 0.1}]}]
)
def test_threads_do_not_change_the_decision(params):
    sc = generate_scenario(30, 12, seed=3, capacity=False, purchasing=False)
    p = protocol(**params)
    one = solve(p, sc, workers=1)
    many = solve(p, sc, workers=4)
    assert one.decision.status is SolveStatus.OPTIMAL
    assert one.record.decision_hash == many.record.decision_hash
    pulp_path = solve(p, sc, use_fast_path=False)
    assert pulp_path.decision.unmet_by_tier == pytest.approx(one.decision.unmet_by_tier, abs=1e-3)
    assert pulp_path.decision.total_cost == pytest.approx(one.decision.total_cost, rel=1e-6)


def test_closed_form_path_is_used_on_complete_instances_and_times_are_reported():
    sc = generate_scenario(20, 6, seed=2, capacity=False, purchasing=False)
    called = time.perf_counter()
    r = solve(protocol(), sc)
    wall = time.perf_counter() - called
    assert {g.method for g in r.decision.groups} == {"highspy/closed-form tiers"}
    t = r.timings
    assert t.invariants_s > 0
    assert t.total_s == pytest.approx(
        t.build_s + t.solve_s + t.extract_s + t.invariants_s + t.record_s
    )
    # the phases are disjoint parts of the call; those up to the decision (and the
    # checks of batches of orders made meanwhile) are parts of its window
    assert t.build_s + t.solve_s + t.extract_s <= t.decision_s <= wall
    assert t.total_s <= wall


def test_share_table_matches_the_reference_rule():
    data = generate_scenario_data(12, 5, seed=4, capacity=False, purchasing=False)
    agreements = data["agreements"]["surplus_sharing"]
    agreements[0]["materials"] = ["M0001", "M0003"]
    agreements.append(
        {"partner_id": agreements[0]["partner_id"], "share": 0.95, "materials": ["M0003"]}
    )
    agreements.append(
        {"partner_id": agreements[1]["partner_id"], "share": 0.05, "materials": ["M0000"]}
    )
    del agreements[2]
    sc = parse_scenario(data, "<test>")
    table = ShareTable(sc)
    for partner in sc.partners:
        for material in sc.materials:
            assert table.share(partner.id, material.id) == donor_share(sc, partner.id, material.id)


def test_spare_donor_next_to_unmet_need_is_detected_with_run_problems():
    sc = scenario([("donor", 100, 0, 1.0, 10.0)], [("hosp", 1, 70, 10.5)])
    p = protocol()
    r = solve(p, sc)
    assert r.violations == []
    half = [t.model_copy(update={"quantity": t.quantity / 2}) for t in r.decision.transfers]
    fulfil = [f.model_copy(update={"fulfilled": f.fulfilled / 2}) for f in r.decision.fulfilment]
    bad = r.decision.model_copy(update={"transfers": half, "fulfilment": fulfil})
    problems = build_problems(sc, p.optimization, p.scope)
    found = check_tier_priority(sc, p.optimization, p.scope, bad, problems)
    assert found == check_tier_priority(sc, p.optimization, p.scope, bad)
    assert len(found) == 1 and "spare" in found[0] and "need-hosp" in found[0]


def test_block_lp_of_small_materials_matches_one_lp_per_material():
    from protocols.fastlp import batchable, solve_fast, solve_fast_batch

    sc = generate_scenario(25, 10, seed=5, capacity=False, purchasing=False)
    problems = [m.problem for m in build_problems(sc, protocol().optimization, protocol().scope)]
    assert all(batchable(p) for p in problems)
    together = solve_fast_batch(problems, 60.0)
    assert together is not None
    for problem, block in zip(problems, together, strict=True):
        alone = solve_fast(problem, 60.0)
        assert block.status is alone.status is SolveStatus.OPTIMAL
        assert block.method == alone.method
        assert [name for name, _ in block.stages] == [name for name, _ in alone.stages]
        for (_, a), (_, b) in zip(block.stages, alone.stages, strict=True):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-6)
        tiers = {s.tier for s in problem.sinks}
        sink_tier = [problem.sinks[j].tier for j in problem.arc_sink]
        for tier in tiers:
            got = sum(f for f, t in zip(block.flows, sink_tier, strict=True) if t == tier)
            ref = sum(f for f, t in zip(alone.flows, sink_tier, strict=True) if t == tier)
            assert got == pytest.approx(ref, rel=1e-9, abs=1e-6)


def test_batch_size_changes_no_objective(monkeypatch):
    import protocols.dispatch as dispatch

    sc = generate_scenario(30, 12, seed=3, capacity=False, purchasing=False)
    p = protocol()
    batched = solve(p, sc)
    monkeypatch.setattr(dispatch, "BATCH_COLUMNS", 0)  # every material alone
    alone = solve(p, sc)
    assert batched.decision.status is alone.decision.status is SolveStatus.OPTIMAL
    assert batched.decision.unmet_by_tier == pytest.approx(alone.decision.unmet_by_tier, abs=1e-5)
    assert batched.decision.total_cost == pytest.approx(alone.decision.total_cost, rel=1e-9)


@pytest.mark.parametrize("chunks", [(1,), (2, 3), (8, 16, 32)])
def test_problems_taken_chunk_by_chunk_give_the_same_stacks_and_solutions(monkeypatch, chunks):
    import numpy as np

    import protocols.dispatch as dispatch
    from protocols.reallocation import iter_problems
    from protocols.solvers import SolverChoice

    sc = generate_scenario(30, 12, seed=3, capacity=False, purchasing=False)
    p = protocol()
    problems = [m.problem for m in build_problems(sc, p.optimization, p.scope)]
    choice = SolverChoice("highs")
    monkeypatch.setattr(dispatch, "BATCH_COLUMNS", 400)  # stacks of 2-3 materials

    def stacks(solving):
        jobs = {}
        for i, (job, position, batch) in sorted(solving._jobs.items()):
            jobs.setdefault(id(job), []).append((i, position, batch))
        return [[i for i, _, _ in members] for members in jobs.values()]

    with dispatch.Solving(problems, choice, workers=2) as at_once:
        reference = list(at_once)
        reference_stacks = stacks(at_once)
    assert any(len(s) > 1 for s in reference_stacks)
    monkeypatch.setattr(dispatch, "CHUNKS", chunks)
    streamed = (mp.problem for mp in iter_problems(sc, p.optimization, p.scope))
    with dispatch.Solving(streamed, choice, workers=2) as chunked:
        solutions = list(chunked)
        assert stacks(chunked) == reference_stacks  # stacks may span chunks
    for a, b in zip(reference, solutions, strict=True):
        assert a.status is b.status and a.method == b.method
        assert np.array_equal(a.flows, b.flows)  # the same LPs: the same vertex


def test_block_diagonal_of_slices_is_the_stacked_lp():
    import numpy as np

    from protocols.highs_lp import block_diagonal
    from protocols.tier_reduction import TierReductions

    sc = generate_scenario(20, 6, seed=2, capacity=False, purchasing=False)
    p = protocol()
    problems = [m.problem for m in build_problems(sc, p.optimization, p.scope)]
    whole = TierReductions(problems).stacked(0, len(problems) - 1)
    first, second = TierReductions(problems[:2]), TierReductions(problems[2:])
    joined = block_diagonal([first.stacked(0, 1), second.stacked(0, len(problems) - 3)])
    for name in whole.__dataclass_fields__:
        a, b = getattr(whole, name), getattr(joined, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_donor_check_uses_material_specific_shares():
    """Every donor's cap in the check is the reference share x surplus, with agreements
    per material next to partner-wide ones; giving just over a cap is flagged."""
    data = generate_scenario_data(12, 5, seed=4, capacity=False, purchasing=False)
    agreements = data["agreements"]["surplus_sharing"]
    agreements[0]["materials"] = ["M0001", "M0003"]
    agreements.append(
        {"partner_id": agreements[0]["partner_id"], "share": 0.95, "materials": ["M0003"]}
    )
    agreements.append({"partner_id": agreements[1]["partner_id"], "share": 1.0, "materials": []})
    del agreements[2]
    sc = parse_scenario(data, "<test>")
    r = solve(protocol(), sc)
    assert r.violations == []
    d = r.decision
    given: dict[tuple[str, str, str], float] = {}
    for t in d.transfers:
        key = (t.from_partner, t.from_site, t.material_id)
        given[key] = given.get(key, 0.0) + t.quantity
    positions = {(p.partner_id, p.site_id, p.material_id): p for p in sc.positions}
    for n, (key, amount) in enumerate(sorted(given.items())):
        pos = positions[key]
        cap = donor_share(sc, key[0], key[2]) * max(0.0, pos.on_hand - pos.safety_stock)
        first = next(
            k
            for k, t in enumerate(d.transfers)
            if (t.from_partner, t.from_site, t.material_id) == key
        )
        over = d.transfers[first].quantity + cap - amount + 1e-3 * max(1.0, cap)
        bad = d.model_copy(
            update={
                "transfers": [
                    *d.transfers[:first],
                    d.transfers[first].model_copy(update={"quantity": over}),
                    *d.transfers[first + 1 :],
                ]
            }
        )
        problems = check_donors(sc, bad)
        assert any(p.startswith(f"supply: {'/'.join(key)} gives") for p in problems), (n, key)
