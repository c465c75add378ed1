"""Reused HiGHS instances (protocols.highs_lp.IdleInstances) give the same decisions."""

from __future__ import annotations

import pytest

from protocols import highs_lp
from protocols.generate import generate_scenario
from protocols.highs_lp import IDLE_DEVEX, IdleInstances
from protocols.run import solve
from tests.protocols.helpers import protocol


def test_a_returned_instance_is_empty_and_takes_the_new_time_limit() -> None:
    idle = IdleInstances(limit=1)
    h = idle.take(5.0)
    assert h.getOptionValue("time_limit")[1] == 5.0
    h.setOptionValue("output_flag", False)
    h.addVars(3, [0.0] * 3, [1.0] * 3)
    h.run()
    idle.give_back(h)
    idle.give_back(IdleInstances().take(1.0))  # over the limit: dropped
    assert len(idle) == 1
    again = idle.take(7.0)
    assert again is h and len(idle) == 0
    assert again.getNumCol() == 0 and again.getNumRow() == 0
    assert again.getOptionValue("time_limit")[1] == 7.0
    assert again.getOptionValue("simplex_dual_edge_weight_strategy")[1] == 1  # devex kept


def test_decisions_do_not_depend_on_what_a_reused_instance_solved_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[object] = []
    fresh = highs_lp.new_highs

    def counted(time_limit_s: float, *, devex: bool = False) -> object:
        made.append(None)
        return fresh(time_limit_s, devex=devex)

    monkeypatch.setattr(highs_lp, "new_highs", counted)
    a = generate_scenario(30, 24, seed=5, capacity=False, purchasing=False)
    b = generate_scenario(30, 24, seed=6, capacity=False, purchasing=False)
    IDLE_DEVEX.clear()
    first = solve(protocol(), a).record.decision_hash
    assert made and len(IDLE_DEVEX) == len(made)  # every optimal stack gave its instance back
    solve(protocol(), b)
    made.clear()
    assert solve(protocol(), a).record.decision_hash == first
    assert not made  # all from the idle ones, which had solved b
