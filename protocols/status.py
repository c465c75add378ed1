"""Solver status as a value: every run ends in exactly one of these."""

from __future__ import annotations

from enum import StrEnum


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    ERROR = "error"

    @property
    def has_solution(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)

    @property
    def proven_optimal(self) -> bool:
        return self is SolveStatus.OPTIMAL


def worst(statuses: list[SolveStatus]) -> SolveStatus:
    """Combine the statuses of independent sub-problems (error > infeasible > limit > optimal)."""
    order = [SolveStatus.ERROR, SolveStatus.INFEASIBLE, SolveStatus.TIME_LIMIT]
    for status in order:
        if status in statuses:
            return status
    return SolveStatus.OPTIMAL
