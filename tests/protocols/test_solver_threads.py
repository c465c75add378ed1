"""HiGHS keeps one thread scheduler per process: the PuLP path must work after the highspy
fast path (or anything else) has run HiGHS with its default threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_pulp_highs_solves_after_a_default_highspy_run() -> None:
    # in a fresh process: the scheduler is set up by the first HiGHS run of the process
    script = textwrap.dedent(
        """
        import highspy, pulp
        from protocols.solvers import SolverChoice, make_pulp_solver
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVar(0, 1)
        h.changeColCost(0, 1.0)
        h.run()
        lp = pulp.LpProblem("pool", pulp.LpMinimize)
        x = pulp.LpVariable("x", 0, 10)
        y = pulp.LpVariable("y", cat="Binary")
        lp += x + y
        lp += x + 5 * y >= 3
        lp.solve(make_pulp_solver(SolverChoice("highs", 10.0, 1e-6)))
        print(pulp.LpStatus[lp.status])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "Optimal", done.stdout
