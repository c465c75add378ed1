"""Reallocation solve benchmark: protocol path vs one monolithic highspy model.

Usage: python benchmarks/solve.py [--sizes 50x50,200x100] [--seed 1]

Both sides solve the same lexicographic problem (unmet need tier 1, then 2,
then 3, then transport cost) on the same generated instance. The monolithic
baseline puts every material in one highspy LP and solves one stage per tier
plus the cost stage, fixing each optimum as a row. Printed: wall times, both
objective vectors and the ratio protocol / monolithic.
"""

from __future__ import annotations

import argparse
import time

import highspy
import numpy as np

from protocols.generate import generate_scenario
from protocols.loader import load_library
from protocols.reallocation import build_problems
from protocols.run import solve

INF = highspy.kHighsInf


def monolithic(scenario, params, scope) -> tuple[float, dict[int, float], float, int]:
    start = time.perf_counter()
    problems = [m.problem for m in build_problems(scenario, params, scope)]
    cols_src, cols_snk, cost, tiers = [], [], [], []
    row_upper: list[np.ndarray] = []
    demand_by_tier: dict[int, float] = {}
    offset = 0
    for p in problems:
        n_src, n_snk = len(p.sources), len(p.sinks)
        cols_src.append(p.arc_source + offset)
        cols_snk.append(p.arc_sink + offset + n_src)
        cost.append(p.arc_cost)
        sink_tier = np.array([s.tier for s in p.sinks])
        tiers.append(sink_tier[p.arc_sink])
        row_upper.append(np.array([s.capacity for s in p.sources]))
        row_upper.append(np.array([s.demand for s in p.sinks]))
        for s in p.sinks:
            demand_by_tier[s.tier] = demand_by_tier.get(s.tier, 0.0) + s.demand
        offset += n_src + n_snk
    src, snk = np.concatenate(cols_src), np.concatenate(cols_snk)
    c, arc_tier = np.concatenate(cost), np.concatenate(tiers)
    n = src.shape[0]
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, offset
    lp.col_cost_ = c
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, INF)
    lp.row_lower_ = np.full(offset, -INF)
    lp.row_upper_ = np.concatenate(row_upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
    index = np.empty(2 * n, dtype=np.int32)
    index[0::2], index[1::2] = src, snk
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = np.ones(2 * n)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    all_cols = np.arange(n, dtype=np.int32)
    unmet = {}
    for tier in sorted(demand_by_tier):
        arcs = np.nonzero(arc_tier == tier)[0].astype(np.int32)
        obj = np.zeros(n)
        obj[arcs] = -1.0
        h.changeColsCost(n, all_cols, obj)
        h.run()
        best = -h.getInfo().objective_function_value
        unmet[tier] = demand_by_tier[tier] - best
        h.addRow(best - 1e-9 * max(1.0, best), INF, arcs.size, arcs, np.ones(arcs.size))
    h.changeColsCost(n, all_cols, c)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    total_cost = h.getInfo().objective_function_value
    return time.perf_counter() - start, unmet, total_cost, n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="50x50,200x100")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    protocol = load_library().protocols["bulk-material-reallocation"]
    for size in args.sizes.split(","):
        partners, materials = (int(x) for x in size.split("x"))
        scenario = generate_scenario(
            partners, materials, seed=args.seed, capacity=False, purchasing=False
        )
        best_mono, best_proto = float("inf"), float("inf")
        for _ in range(args.repeat):
            mono_s, mono_unmet, mono_cost, lanes = monolithic(
                scenario, protocol.optimization, protocol.scope
            )
            best_mono = min(best_mono, mono_s)
            wall = time.perf_counter()
            result = solve(protocol, scenario)
            wall = time.perf_counter() - wall
            best_proto = min(best_proto, result.timings.total_s)
        d = result.decision
        rel = abs(d.total_cost - mono_cost) / max(1.0, abs(mono_cost))
        print(f"== {partners} partners x {materials} materials: {lanes:,} candidate lanes ==")
        print(
            f"monolithic highspy : {best_mono:8.3f} s  cost {mono_cost:,.4f}  unmet "
            + ", ".join(f"t{t}={v:,.4f}" for t, v in mono_unmet.items())
        )
        print(
            f"protocol path      : {best_proto:8.3f} s  cost {d.total_cost:,.4f}  unmet "
            + ", ".join(f"t{t}={v:,.4f}" for t, v in d.unmet_by_tier.items())
            + f"  (build {result.timings.build_s:.3f}, solve {result.timings.solve_s:.3f},"
            f" extract {result.timings.extract_s:.3f}; with invariant checks {wall:.3f} s)"
        )
        print(
            f"status {d.status.value}; cost relative difference {rel:.2e}; "
            f"ratio protocol/monolithic = {best_proto / best_mono:.3f} (target <= 0.5)"
        )


if __name__ == "__main__":
    main()
