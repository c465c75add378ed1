"""The invariants of a reallocation decision, checked batch by batch while it is solved.

:func:`protocols.invariants.check_decision` runs once the decision is complete, when
the solver threads have nothing left to do: at 50 x 50 about 4 ms at the end of a
~35 ms run, on one core. Every check of a reallocation decision is local to one
material: a donor is a (partner, site, material) position, a need belongs to one
material and need ids are unique. So :class:`BatchChecks` runs the same checks on each
batch of orders and fulfilment entries as soon as it is made (``run._Outcome.flush``),
while later materials are still being solved.

The result counts only if the decision holds exactly the checked batches (the same
order and fulfilment objects in the same order, no capacity assignments or purchase
shares) and the checks were local: no need id and no donor in two batches, no order
for a need outside its batch. Otherwise (``None``) the caller checks the decision
whole. The violations are those of ``check_decision``, in its order: per
family, donors in key order, tier priority only when the decision is proven optimal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import chain
from operator import is_

from protocols.decisions import Decision, NeedFulfilment, TransferOrder
from protocols.invariants import (
    OrderSums,
    Stock,
    delivery_violations,
    donor_violations,
    receiver_violations,
    tier_priority_applies,
    tier_violations,
)
from protocols.reallocation import MaterialProblem
from schemas.protocol import ReallocationParameters
from schemas.scenario import Scenario


def _same(made: Sequence[object], checked: Sequence[object]) -> bool:
    return len(made) == len(checked) and all(map(is_, made, checked))


class BatchChecks:
    """Checks batches of a reallocation decision as they are made; ``seconds`` is the
    time :meth:`add` took so far."""

    def __init__(self, scenario: Scenario, params: ReallocationParameters) -> None:
        self._scenario = scenario
        self._tier_applies = tier_priority_applies(params)
        self._stock: Stock | None = None  # indexed on the first batch
        self._transfers: list[TransferOrder] = []
        self._fills: list[NeedFulfilment] = []
        # what makes the checks local to their batch: no need id and no donor in two
        self._need_ids: set[str] = set()
        self._donor_keys: set[tuple[str, str, str]] = set()
        self._overlap = False
        self._receivers: list[str] = []
        self._deliveries: list[str] = []
        self._unknown: set[str] = set()
        self._donors: list[tuple[tuple[str, str, str], str]] = []
        self._tier: list[str] = []
        self.seconds = 0.0

    def add(
        self,
        materials: Sequence[MaterialProblem],
        orders: list[TransferOrder],
        fills: list[NeedFulfilment],
    ) -> None:
        """Check the orders and fulfilment entries of these materials' solutions."""
        start = time.perf_counter()
        if self._stock is None:
            self._stock = Stock.of(self._scenario)
        sums = OrderSums.of_lists(orders, fills)
        self._receivers += receiver_violations(fills, sums)
        self._deliveries += delivery_violations(fills, sums)
        self._unknown.update(sums.unknown)
        self._donors += donor_violations(self._stock, sums)
        if self._tier_applies:
            self._tier += tier_violations(materials, sums)
        self._transfers += orders
        self._fills += fills
        self._overlap |= not self._need_ids.isdisjoint(sums.need_index)
        self._overlap |= not self._donor_keys.isdisjoint(sums.donor_index)
        self._need_ids.update(sums.need_index)
        self._donor_keys.update(sums.donor_index)
        self.seconds += time.perf_counter() - start

    def result(self, decision: Decision) -> list[str] | None:
        """The violations of ``decision`` if it is exactly the checked batches, else
        None (check it whole)."""
        if (
            self._overlap
            or self._unknown  # orders for a need of another batch, or of none
            or decision.capacity_assignments
            or decision.purchase_shares
            or not _same(decision.transfers, self._transfers)
            or not _same(decision.fulfilment, self._fills)
        ):
            return None
        donors = sorted(self._donors, key=lambda found: found[0])  # stable: per key
        tier = self._tier if decision.status.proven_optimal else []
        return list(
            chain(
                self._receivers,
                self._deliveries,
                (problem for _, problem in donors),
                tier,
            )
        )
