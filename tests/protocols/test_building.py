"""Model building and order extraction shortcuts against plain reference code."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from protocols.decisions import NeedFulfilment, TransferOrder, trusted
from protocols.generate import generate_scenario, generate_scenario_data
from protocols.geo import haversine_km, haversine_matrix
from protocols.loader import load_library
from protocols.reallocation import ShareTable, build_problems, lane_cost_matrix, surplus
from protocols.run import solve
from protocols.sites import SiteTable
from protocols.status import SolveStatus
from schemas.scenario import load_scenario, parse_scenario
from tests.protocols.helpers import protocol

ORDER = {
    "order_id": "tr-0123456789abcdef0123",
    "material_id": "M0001",
    "unit": "pcs",
    "from_partner": "p0001",
    "from_site": "main",
    "to_partner": "p0002",
    "to_site": "main",
    "quantity": 12.5,
    "due": date(2026, 11, 25),
    "need_id": "n-1",
    "distance_km": 101.123,
    "cost": 1264.0375,
}
FILL = {
    "need_id": "n-1",
    "partner_id": "p0002",
    "item": "M0001",
    "tier": 1,
    "requested": 20.0,
    "fulfilled": 12.5,
}


@pytest.mark.parametrize(("cls", "values"), [(TransferOrder, ORDER), (NeedFulfilment, FILL)])
def test_trusted_instances_equal_validated_and_constructed_ones(cls, values):
    fast = trusted(cls, dict(values))
    assert fast == cls.model_construct(**values) == cls(**values)
    assert fast.model_dump(mode="json") == cls(**values).model_dump(mode="json")
    assert fast.model_fields_set == set(values)
    changed = fast.model_copy(update={"need_id": "n-2"})
    assert changed.need_id == "n-2" and fast.need_id == "n-1"
    with pytest.raises(Exception, match="frozen"):
        fast.need_id = "n-3"


def _scenario_with_lane_costs():
    data = generate_scenario_data(12, 4, seed=7, capacity=False, purchasing=False)
    ids = [p["id"] for p in data["partners"]]
    data["lane_costs"] = [
        {
            "from_partner": a,
            "from_site": "main",
            "to_partner": b,
            "to_site": "main",
            "cost_per_unit": float(k + 1),
        }
        for k, (a, b) in enumerate(zip(ids, ids[3:] + ids[:3], strict=True))
    ] + [  # the same lane twice: the last entry wins
        {
            "from_partner": ids[0],
            "from_site": "main",
            "to_partner": ids[3],
            "to_site": "main",
            "cost_per_unit": 99.0,
        }
    ]
    return parse_scenario(data)


def test_built_problems_match_a_per_lane_reference():
    sc = _scenario_with_lane_costs()
    table = {(lc.from_partner, lc.to_partner): lc.cost_per_unit for lc in sc.lane_costs}
    assert table[sc.partners[0].id, sc.partners[3].id] == 99.0
    p = protocol()
    shares = ShareTable(sc)
    problems = build_problems(sc, p.optimization, p.scope)
    assert problems
    for mp in problems:
        prob = mp.problem
        for s in prob.sources:
            pos = next(
                x
                for x in sc.positions
                if (x.partner_id, x.site_id, x.material_id)
                == (s.partner_id, s.site_id, mp.material_id)
            )
            cap = shares.share(s.partner_id, mp.material_id) * surplus(
                pos.on_hand, pos.safety_stock
            )
            assert s.capacity == cap > 0
        expected = [
            (i, j)
            for i, s in enumerate(prob.sources)
            for j, n in enumerate(prob.sinks)
            if (s.partner_id, s.site_id) != (n.partner_id, n.site_id)
        ]
        assert list(zip(prob.arc_source.tolist(), prob.arc_sink.tolist(), strict=True)) == expected
        for a, (i, j) in enumerate(expected):
            src, snk = (
                sc.site(prob.sources[i].partner_id, "main"),
                sc.site(prob.sinks[j].partner_id, "main"),
            )
            km = haversine_km(src.latitude, src.longitude, snk.latitude, snk.longitude)
            assert mp.distance[a] == pytest.approx(km, rel=1e-12)
            lane = (prob.sources[i].partner_id, prob.sinks[j].partner_id)
            assert prob.arc_cost[a] == pytest.approx(table.get(lane, km), rel=1e-12)
        dist, cost = lane_cost_matrix(sc, prob.sources, prob.sinks)
        assert np.array_equal(dist[prob.arc_source, prob.arc_sink], mp.distance)
        assert np.array_equal(cost[prob.arc_source, prob.arc_sink], prob.arc_cost)


def test_lane_costs_reach_the_decision():
    sc = _scenario_with_lane_costs()
    r = solve(protocol(), sc)
    assert r.decision.status is SolveStatus.OPTIMAL and r.violations == []
    slow = solve(protocol(), sc, use_fast_path=False)
    assert r.decision.total_cost == pytest.approx(slow.decision.total_cost, rel=1e-6)


SCENARIOS = Path(__file__).resolve().parents[2] / "protocols" / "scenarios"


@pytest.mark.parametrize("name", ["small.yaml", "medium.json"])
def test_decision_hash_is_the_hash_of_the_model_dump(name):
    sc = load_scenario(SCENARIOS / name)
    lib = load_library()
    assert lib.errors == []
    for p in lib.protocols.values():
        d = solve(p, sc).decision
        assert d.content_hash() == hashlib.sha256(d.canonical_json()).hexdigest()
        broken = d.model_copy(update={"status": SolveStatus.ERROR, "explanation": "x"})
        assert broken.content_hash() == hashlib.sha256(broken.canonical_json()).hexdigest()


def test_site_table_distances_are_the_haversine_matrix_bit_for_bit():
    sc = _scenario_with_lane_costs()
    sites = SiteTable(sc)
    rng = np.random.default_rng(3)
    src = rng.integers(0, len(sites.latitude), 7)
    snk = rng.integers(0, len(sites.latitude), 5)
    expected = haversine_matrix(
        sites.latitude[src], sites.longitude[src], sites.latitude[snk], sites.longitude[snk]
    )
    assert np.array_equal(sites.distance(src, snk), expected)


def test_pair_distances_and_costs_are_the_matrix_values_bit_for_bit():
    sc = _scenario_with_lane_costs()
    sites = SiteTable(sc)
    rng = np.random.default_rng(5)
    src = rng.integers(0, len(sites.latitude), 9)
    snk = rng.integers(0, len(sites.latitude), 11)
    dist, cost = sites.distance_and_cost(src, snk)
    rows, cols = np.meshgrid(np.arange(9), np.arange(11), indexing="ij")
    pair_dist, pair_cost = sites.pair_distance_and_cost(src[rows.ravel()], snk[cols.ravel()])
    assert np.array_equal(pair_dist, dist.ravel())
    assert np.array_equal(pair_cost, cost.ravel())
    assert (pair_cost != pair_dist).any()  # the lane table overrides some distances


@pytest.mark.parametrize(("params", "seed"), [({}, 1), ({"max_distance_km": 300}, 2)])
def test_iterated_problems_are_the_per_material_reference(params, seed):
    from protocols.reallocation import MaterialProblem, scoped_materials
    from protocols.transport import build_arcs

    sc = generate_scenario(40, 30, seed=seed, capacity=False, purchasing=False)
    p = protocol(**params)
    problems = build_problems(sc, p.optimization, p.scope)
    assert [m.material_id for m in problems] == [
        m for m in scoped_materials(sc, p.scope) if any(n.material_id == m for n in sc.needs)
    ]
    sites = SiteTable(sc)
    for mp in problems:
        prob = mp.problem
        assert isinstance(mp, MaterialProblem)
        dist, cost = lane_cost_matrix(sc, prob.sources, prob.sinks, sites)
        src_site = sites.of([(s.partner_id, s.site_id) for s in prob.sources])
        snk_site = sites.of([(s.partner_id, s.site_id) for s in prob.sinks])
        allowed = src_site[:, None] != snk_site[None, :]
        if "max_distance_km" in params:
            allowed &= dist <= params["max_distance_km"]
        arc_src, arc_snk, arc_cost = build_arcs(list(prob.sources), list(prob.sinks), cost, allowed)
        assert np.array_equal(prob.arc_source, arc_src)
        assert np.array_equal(prob.arc_sink, arc_snk)
        assert np.array_equal(prob.arc_cost, arc_cost)
        assert np.array_equal(mp.distance, dist[arc_src, arc_snk])
        assert prob.arc_source.dtype == prob.arc_sink.dtype == np.int64


def test_orders_and_fulfilment_of_a_run_equal_validated_models():
    sc = generate_scenario(15, 5, seed=4, capacity=False, purchasing=False)
    d = solve(protocol(), sc).decision
    assert d.transfers and d.fulfilment
    for model in [*d.transfers, *d.fulfilment]:
        again = type(model)(**model.model_dump())
        assert model == again and model.model_dump(mode="json") == again.model_dump(mode="json")
        assert model.model_fields_set == again.model_fields_set == set(type(model).model_fields)
    first, second = d.transfers[0], d.transfers[1]
    changed = first.model_copy(update={"quantity": 1.0})
    changed.model_fields_set.discard("cost")  # a copy's set is its own
    assert first.model_fields_set == second.model_fields_set == set(TransferOrder.model_fields)
