"""Complete problems: the tier stages become bounds, leaving one plain transportation LP.

When every source with capacity has a lane to every sink with demand ("complete"
problem) and there is no minimum fill, the most tier ``t`` can receive once tiers
``< t`` are at their maximum is exactly ``T_t = min(D_t, S - T_1 - ... - T_{t-1})``
(``S`` total capacity, ``D_t`` demand of tier ``t``): any split of supply over
sinks is reachable, so only the totals bind.

Those maxima are reached exactly by the following bounds, and every plan within the
bounds reaches them, so the cost LP over these bounds is the lexicographic optimum
(not an approximation):

- a "full" tier (``T_t = D_t``): each of its needs receives exactly its quantity
  (the tier total is ``D_t`` only if every need is filled);
- if some tier is not full (supply runs out, ``S < D_1 + D_2 + D_3``): every source
  gives exactly its capacity, the first tier that is not full (the "marginal" tier)
  keeps ``0 <= received <= quantity`` per need, and the tiers after it receive
  nothing (their lanes are left out). The marginal tier then gets
  ``S - sum(full D_t) = T_t``, the later tiers ``0``: their maxima;
- otherwise (enough supply for everybody) sources keep ``<= capacity``.

The LP has only supply and demand rows (no tier rows, no fixing tolerance), and
the lanes of tiers that receive nothing, of empty sources and of zero needs are
not columns. Measured with highspy on the generated instances (same simplex iteration
counts as the LP with tier rows): 50 x 50 46 -> 34 ms for all materials, 200 x 100
2.0 -> 0.92 s (one thread).

:class:`TierReductions` reduces all problems of a run at once (numpy over all their
sources, sinks and arcs; per problem this is ~40 small numpy calls, ~90 us) and
keeps their LPs back to back, so the block-diagonal LP of consecutive problems is
a slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from protocols.highs_lp import INF, LpArrays
from protocols.transport import TransportProblem

IntArray = npt.NDArray[np.int64]


def closed_form_tier_targets(problem: TransportProblem) -> dict[int, float] | None:
    """Exact lexicographic tier maxima for complete problems without minimum fill."""
    if problem.options.min_fill or not problem.is_complete():
        return None
    remaining = float(problem.capacity.sum())
    totals = np.bincount(problem.sink_tier, weights=problem.demand)
    targets: dict[int, float] = {}
    for tier in problem.tiers:
        targets[tier] = max(0.0, min(float(totals[tier]), remaining))
        remaining -= targets[tier]
    return targets


@dataclass(frozen=True, eq=False)
class TierReduction:
    """The cost LP of a complete problem with its tier maxima built into the bounds."""

    targets: dict[int, float]  # exact tier maxima (closed form)
    arcs: IntArray  # problem arcs that are columns of ``lp``, ascending
    owner: TierReductions
    key: int  # the problem's index in ``owner``

    @property
    def n_cols(self) -> int:
        return int(self.arcs.shape[0])

    @cached_property
    def lp(self) -> LpArrays:
        """This problem's reduced LP alone (in a batch, only the stacked LP is built)."""
        return self.owner.stacked(self.key, self.key)

    def flows(self, problem: TransportProblem, values: npt.NDArray[np.float64]) -> np.ndarray:
        """Flows on every arc of ``problem`` from the LP's column values."""
        flows = np.zeros(problem.n_arcs)
        flows[self.arcs] = values
        return flows


def reduce_tiers(problem: TransportProblem) -> TierReduction | None:
    """The plain transportation LP of a complete problem (None if not complete, with
    minimum fill or without lanes: those keep one LP per tier stage)."""
    return TierReductions([problem]).get(0)


def _offsets(counts: IntArray) -> IntArray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


class TierReductions:
    """The reduced LPs of many problems, computed together and stored back to back.

    ``eligible[k]`` False leaves problem ``k`` out (e.g. not on the fast path).
    Problems that are not complete, have a minimum fill or no lanes get no reduction
    and add no rows or columns, so :meth:`stacked` over a range of problems is the
    block-diagonal LP of the reduced ones in it.
    """

    def __init__(
        self, problems: Sequence[TransportProblem], eligible: Sequence[bool] | None = None
    ) -> None:
        self._slot: dict[int, int] = {}
        probs: list[TransportProblem] = []
        for k, p in enumerate(problems):
            if (eligible is None or eligible[k]) and p.n_arcs > 0 and not p.options.min_fill:
                self._slot[k] = len(probs)
                probs.append(p)
        self._probs = probs
        m = len(probs)
        n_src = np.array([len(p.sources) for p in probs], dtype=np.int64)
        n_snk = np.array([len(p.sinks) for p in probs], dtype=np.int64)
        n_arc = np.array([p.n_arcs for p in probs], dtype=np.int64)
        src_off, snk_off, arc_off = _offsets(n_src), _offsets(n_snk), _offsets(n_arc)
        src_prob = np.repeat(np.arange(m), n_src)
        snk_prob = np.repeat(np.arange(m), n_snk)
        arc_prob = np.repeat(np.arange(m), n_arc)
        cap = np.fromiter((s.capacity for p in probs for s in p.sources), np.float64, src_off[-1])
        dem = np.fromiter((s.demand for p in probs for s in p.sinks), np.float64, snk_off[-1])
        tier = np.fromiter((s.tier for p in probs for s in p.sinks), np.int64, snk_off[-1])
        local_src = np.concatenate([p.arc_source for p in probs] or [np.zeros(0, np.int64)])
        local_snk = np.concatenate([p.arc_sink for p in probs] or [np.zeros(0, np.int64)])
        arc_src = local_src + src_off[arc_prob]
        arc_snk = local_snk + snk_off[arc_prob]
        active_src, active_snk = cap > 0, dem > 0

        # Complete: every (active source, active sink) pair of the problem has a lane
        # (pairs counted once: a problem's arcs need not be unique).
        pair_off = _offsets(n_src * n_snk)  # every problem here has >= 1 source and sink
        both = active_src[arc_src] & active_snk[arc_snk]
        covered = np.zeros(int(pair_off[-1]), dtype=bool)
        covered[(pair_off[arc_prob] + local_src * n_snk[arc_prob] + local_snk)[both]] = True
        del local_src, local_snk, both
        required = np.bincount(src_prob[active_src], minlength=m) * np.bincount(
            snk_prob[active_snk], minlength=m
        )
        pairs = np.add.reduceat(covered, pair_off[:-1], dtype=np.int64) if m else required
        complete = pairs == required
        del covered

        # Tier maxima in priority order (the closed form), full and marginal tiers.
        n_tiers = int(tier.max(initial=0)) + 1
        cell = snk_prob * n_tiers + tier
        demand = np.bincount(cell, weights=dem, minlength=m * n_tiers).reshape(m, n_tiers)
        present = np.bincount(cell[active_snk], minlength=m * n_tiers).reshape(m, n_tiers) > 0
        remaining = np.bincount(src_prob, weights=cap, minlength=m)
        targets = np.zeros((m, n_tiers))
        full = np.zeros((m, n_tiers), dtype=bool)
        marginal = np.zeros((m, n_tiers), dtype=bool)
        exhausted = np.zeros(m, dtype=bool)
        for t in range(n_tiers):
            here = present[:, t]
            target = np.where(here, np.maximum(0.0, np.minimum(demand[:, t], remaining)), 0.0)
            remaining = remaining - target
            full[:, t] = here & (target >= demand[:, t])
            short = here & ~full[:, t]
            marginal[:, t] = short & ~exhausted & (target > 0)
            exhausted |= short
            targets[:, t] = target
        self._targets, self._present, self._complete = targets, present, complete

        # Rows: per complete problem its active sources, then the sinks that may receive.
        use_src = active_src & complete[src_prob]
        full_sink = active_snk & complete[snk_prob] & full[snk_prob, tier]
        kept = full_sink | (active_snk & complete[snk_prob] & marginal[snk_prob, tier])
        src_rows = np.bincount(src_prob[use_src], minlength=m)
        snk_rows = np.bincount(snk_prob[kept], minlength=m)
        row_off = _offsets(src_rows + snk_rows)
        source_row = row_off[src_prob] + np.cumsum(use_src) - 1 - _offsets(src_rows)[src_prob]
        sink_row = (
            row_off[snk_prob]
            + src_rows[snk_prob]
            + np.cumsum(kept)
            - 1
            - _offsets(snk_rows)[snk_prob]
        )
        row_lower = np.empty(int(row_off[-1]))
        row_upper = np.empty(int(row_off[-1]))
        row_lower[source_row[use_src]] = np.where(exhausted[src_prob], cap, -INF)[use_src]
        row_upper[source_row[use_src]] = cap[use_src]
        row_lower[sink_row[kept]] = np.where(full_sink, dem, 0.0)[kept]
        row_upper[sink_row[kept]] = dem[kept]

        # Columns: lanes from used sources to kept sinks, problem by problem, in arc order.
        columns = np.nonzero(use_src[arc_src] & kept[arc_snk])[0]
        index = np.empty(2 * columns.size, dtype=np.int32)
        index[0::2] = source_row[arc_src[columns]]
        index[1::2] = sink_row[arc_snk[columns]]
        self._col_off = _offsets(np.bincount(arc_prob[columns], minlength=m))
        self._row_off = row_off
        self._arcs = columns - arc_off[arc_prob[columns]]
        arc_cost = np.concatenate([p.arc_cost for p in probs] or [np.zeros(0)])
        self._cost = np.ascontiguousarray(arc_cost[columns], dtype=np.float64)
        self._index = index
        self._row_lower, self._row_upper = row_lower, row_upper

    def get(self, k: int) -> TierReduction | None:
        """The reduction of problem ``k`` (None if it has none)."""
        j = self._slot.get(k)
        if j is None or not self._complete[j]:
            return None
        targets = {
            int(t): float(self._targets[j, t]) for t in np.nonzero(self._present[j])[0].tolist()
        }
        return TierReduction(targets, self._arcs[self._col_off[j] : self._col_off[j + 1]], self, k)

    def stacked(self, first: int, last: int) -> LpArrays:
        """Block-diagonal reduced LP of problems ``first`` .. ``last`` (inclusive, both
        with a reduction): their blocks in input order; problems in between without a
        reduction add nothing."""
        a, b = self._slot[first], self._slot[last] + 1
        c0, c1 = int(self._col_off[a]), int(self._col_off[b])
        r0, r1 = int(self._row_off[a]), int(self._row_off[b])
        n = c1 - c0
        return LpArrays(
            col_cost=self._cost[c0:c1],
            col_lower=np.zeros(n),
            col_upper=np.full(n, INF),
            row_lower=self._row_lower[r0:r1],
            row_upper=self._row_upper[r0:r1],
            a_start=np.arange(0, 2 * n + 1, 2, dtype=np.int32),
            a_index=self._index[2 * c0 : 2 * c1] - np.int32(r0),
            a_value=np.ones(2 * n),
        )
