"""Tiered transportation problems: the shape shared by reallocation and capacity sharing.

Sources (donor positions, capacity offers) have a capacity; sinks (needs) have a
demand and a criticality tier; arcs are the allowed lanes with a unit cost.
Reallocation builds one problem per material, capacity sharing one per
capability: they never interact, so each is solved on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from protocols.status import SolveStatus

TIER_WORDS = {1: "hospital (tier 1)", 2: "critical infrastructure (tier 2)", 3: "normal (tier 3)"}

#: Constraint families of a transportation problem, in the order they are defined.
FAMILIES = ("supply", "demand", "min_fill", "lots", "min_shipment", "lanes")


class Source(NamedTuple):
    """A donor position or capacity offer (an immutable record: built by the thousand)."""

    partner_id: str
    site_id: str
    capacity: float
    ref: str = ""


class Sink(NamedTuple):
    """A need with its demand and criticality tier."""

    need_id: str
    partner_id: str
    site_id: str
    demand: float
    tier: int
    due: date


@dataclass(frozen=True)
class Vocabulary:
    """How a coordinator calls each constraint family of this kind of problem."""

    supply: str
    demand: str
    lanes: str
    unit: str
    lots: str = "transfers in whole units or packs"
    min_shipment: str = "minimum shipment size"

    def family(self, name: str, min_fill: tuple[tuple[int, float], ...] = ()) -> str:
        if name == "min_fill":
            parts = [f"{TIER_WORDS[t]} needs filled to at least {f:.0%}" for t, f in min_fill]
            return "; ".join(parts) or "minimum fill"
        words: str = getattr(self, name)
        return words


@dataclass(frozen=True)
class TransportOptions:
    fairness: bool = False
    step: float | None = None
    min_lot: float | None = None
    min_fill: tuple[tuple[int, float], ...] = ()

    @property
    def is_mip(self) -> bool:
        return self.step is not None or self.min_lot is not None


@dataclass(frozen=True, eq=False)
class TransportProblem:
    group: str
    sources: tuple[Source, ...]
    sinks: tuple[Sink, ...]
    arc_source: npt.NDArray[np.int64]
    arc_sink: npt.NDArray[np.int64]
    arc_cost: npt.NDArray[np.float64]
    options: TransportOptions
    vocabulary: Vocabulary

    @property
    def n_arcs(self) -> int:
        return int(self.arc_source.shape[0])

    @cached_property
    def capacity(self) -> npt.NDArray[np.float64]:
        """Capacity of each source (computed once; the problem is immutable)."""
        return np.fromiter((s.capacity for s in self.sources), np.float64, len(self.sources))

    @cached_property
    def demand(self) -> npt.NDArray[np.float64]:
        """Demand of each sink."""
        return np.fromiter((s.demand for s in self.sinks), np.float64, len(self.sinks))

    @cached_property
    def sink_tier(self) -> npt.NDArray[np.int64]:
        """Tier of each sink."""
        return np.fromiter((s.tier for s in self.sinks), np.int64, len(self.sinks))

    @property
    def tiers(self) -> list[int]:
        return sorted(set(self.sink_tier[self.demand > 0].tolist()))

    def min_fill_of(self, tier: int) -> float:
        return dict(self.options.min_fill).get(tier, 0.0)

    def is_complete(self) -> bool:
        """True when every source with capacity has a lane to every sink with demand."""
        active_src = self.capacity > 0
        active_snk = self.demand > 0
        if self.n_arcs == 0:
            return not active_src.any() or not active_snk.any()
        both = active_src[self.arc_source] & active_snk[self.arc_sink]
        required = int(active_src.sum()) * int(active_snk.sum())
        if int(both.sum()) < required:
            return False
        covered = np.zeros((len(self.sources), len(self.sinks)), dtype=bool)
        covered[self.arc_source[both], self.arc_sink[both]] = True
        return int(covered.sum()) == required


@dataclass
class TransportSolution:
    group: str
    status: SolveStatus
    flows: npt.NDArray[np.float64]
    stages: list[tuple[str, float]] = field(default_factory=list)
    explanation: str = ""
    conflicting: tuple[str, ...] = ()
    method: str = ""

    def cost(self, problem: TransportProblem) -> float:
        return float(problem.arc_cost @ self.flows) if problem.n_arcs else 0.0

    def inflow(self, problem: TransportProblem) -> npt.NDArray[np.float64]:
        return np.bincount(
            problem.arc_sink, weights=self.flows, minlength=len(problem.sinks)
        ).astype(np.float64)

    def outflow(self, problem: TransportProblem) -> npt.NDArray[np.float64]:
        return np.bincount(
            problem.arc_source, weights=self.flows, minlength=len(problem.sources)
        ).astype(np.float64)


def build_arcs(
    sources: list[Source],
    sinks: list[Sink],
    cost: npt.NDArray[np.float64],
    allowed: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Arcs for every allowed (source, sink) pair, in row-major order (deterministic)."""
    src, snk = np.nonzero(allowed)
    return src.astype(np.int64), snk.astype(np.int64), cost[src, snk].astype(np.float64)


def stage_tolerance(value: float) -> float:
    """Slack allowed when a stage optimum is fixed for the next stage."""
    return 1e-9 * max(1.0, abs(value))
