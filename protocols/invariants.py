"""Invariants checked on every decision, independently of how it was solved.

Each check returns human-readable violations (empty list: all good). Names
match the constraint families so a failure points at the rule that broke.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, itemgetter

import numpy as np
import numpy.typing as npt

from protocols import capacity, reallocation
from protocols.decisions import CapacityAssignment, Decision, NeedFulfilment, TransferOrder
from schemas.protocol import CapacityParameters, ReallocationParameters, Scope
from schemas.scenario import Scenario

TOL = 1e-6

_NEED_ID = attrgetter("need_id")
_TIER = attrgetter("tier")
_REQUESTED = attrgetter("requested")
_FULFILLED = attrgetter("fulfilled")
_QUANTITY = attrgetter("quantity")
_HOURS = attrgetter("hours")
_DONOR = attrgetter("from_partner", "from_site", "material_id")
_POSITION = attrgetter("partner_id", "site_id", "material_id")
_ON_HAND = attrgetter("on_hand")
_SAFETY_STOCK = attrgetter("safety_stock")
_FIRST = itemgetter(0)  # Source.partner_id, Sink.need_id
_SECOND = itemgetter(1)  # Source.site_id
_THIRD = itemgetter(2)  # material of a donor key


def _tol(value: float) -> float:
    return TOL * max(1.0, abs(value))


@dataclass
class OrderSums:
    """What the decision's orders move, summed in ONE pass (shared by the checks).

    Per distinct donor (partner, site, material) in order of first appearance: the
    quantity given and the lowest priority (highest tier number) served; per
    fulfilment entry the tier, requested and fulfilled quantity (numpy arrays, so the
    checks compare all of them at once) and what the orders deliver to its need.
    """

    donors: list[tuple[str, str, str]]
    donor_index: dict[tuple[str, str, str], int]
    given: npt.NDArray[np.float64]  # per donor
    serves: npt.NDArray[np.int64]  # per donor: highest tier number served (0: none known)
    need_index: dict[str, int]  # need id -> fulfilment entry (the last one of that id)
    tier: npt.NDArray[np.int64]  # per fulfilment entry
    requested: npt.NDArray[np.float64]
    fulfilled: npt.NDArray[np.float64]
    received: npt.NDArray[np.float64]  # per fulfilment entry: delivered to its need id
    unknown: dict[str, float]  # need ids the orders deliver to that have no fulfilment

    @classmethod
    def of(cls, decision: Decision) -> OrderSums:
        return cls.of_lists(decision.transfers, decision.fulfilment, decision.capacity_assignments)

    @classmethod
    def of_lists(
        cls,
        transfers: Sequence[TransferOrder],
        fills: Sequence[NeedFulfilment],
        assigned: Sequence[CapacityAssignment] = (),
    ) -> OrderSums:
        """The sums of these orders and fulfilment entries (a decision's, or a part)."""
        # Columns are read with attrgetter/map (no Python bytecode per order).
        n_fills = len(fills)
        need_index = dict(zip(map(_NEED_ID, fills), range(n_fills), strict=True))  # last wins
        tier = np.fromiter(map(_TIER, fills), np.int64, n_fills)
        n_transfers = len(transfers)
        keys = list(map(_DONOR, transfers))
        donor_index = dict.fromkeys(keys, 0)  # distinct donors in order of appearance
        for k, key in enumerate(donor_index):
            donor_index[key] = k
        donor = np.fromiter(map(donor_index.__getitem__, keys), np.int64, n_transfers)
        need_ids = list(map(_NEED_ID, transfers)) + list(map(_NEED_ID, assigned))
        amount = np.fromiter(
            chain(map(_QUANTITY, transfers), map(_HOURS, assigned)), np.float64, len(need_ids)
        )
        entry = np.fromiter(map(need_index.get, need_ids, repeat(-1)), np.int64, len(need_ids))
        known = entry >= 0
        # one bincount over transfers then assignments: summed in order, as one by one
        received = np.bincount(entry[known], weights=amount[known], minlength=n_fills)
        if len(need_index) < n_fills:  # repeated need ids: each entry sees its id's sum
            received = received[[need_index[f.need_id] for f in fills]]
        unknown: dict[str, float] = {}
        for k in np.flatnonzero(~known).tolist():
            unknown[need_ids[k]] = unknown.get(need_ids[k], 0.0) + float(amount[k])
        given = np.bincount(donor, weights=amount[:n_transfers], minlength=len(donor_index))
        serves = np.zeros(len(donor_index), dtype=np.int64)
        served = known[:n_transfers]
        np.maximum.at(serves, donor[served], tier[entry[:n_transfers][served]])
        return cls(
            donors=list(donor_index),
            donor_index=donor_index,
            given=given.astype(np.float64, copy=False),
            serves=serves,
            need_index=need_index,
            tier=tier,
            requested=np.fromiter(map(_REQUESTED, fills), np.float64, n_fills),
            fulfilled=np.fromiter(map(_FULFILLED, fills), np.float64, n_fills),
            received=received.astype(np.float64, copy=False),
            unknown=unknown,
        )

    def unmet(self) -> npt.NDArray[np.bool_]:
        """Per fulfilment entry: less than requested (beyond the tolerance)."""
        short = np.maximum(0.0, self.requested - self.fulfilled)
        return short > TOL * np.maximum(1.0, np.abs(self.requested))


@dataclass(frozen=True)
class Stock:
    """Each stock position's on-hand and safety stock by (partner, site, material), and
    the agreed shares: what the supply check needs of a snapshot, indexed once."""

    index: dict[tuple[str, str, str], int]  # the last position of a key wins
    on_hand: npt.NDArray[np.float64]  # per position, then 0.0 for keys without one
    safety: npt.NDArray[np.float64]
    shares: reallocation.ShareTable

    @classmethod
    def of(cls, scenario: Scenario) -> Stock:
        positions = scenario.positions
        n = len(positions)
        return cls(
            index=dict(zip(map(_POSITION, positions), range(n), strict=True)),
            on_hand=np.fromiter(chain(map(_ON_HAND, positions), (0.0,)), np.float64, n + 1),
            safety=np.fromiter(chain(map(_SAFETY_STOCK, positions), (0.0,)), np.float64, n + 1),
            shares=reallocation.ShareTable(scenario),
        )

    def slots(self, keys: list[tuple[str, str, str]]) -> npt.NDArray[np.int64]:
        """The position of each key (the last slot, 0.0 stock, for keys without one)."""
        none = len(self.on_hand) - 1
        return np.fromiter(map(self.index.get, keys, repeat(none)), np.int64, len(keys))


def check_donors(
    scenario: Scenario, decision: Decision, sums: OrderSums | None = None
) -> list[str]:
    """supply: no donor below safety stock, none above its agreed share of surplus."""
    sums = sums or OrderSums.of(decision)
    return [problem for _, problem in donor_violations(Stock.of(scenario), sums)]


def donor_violations(stock: Stock, sums: OrderSums) -> list[tuple[tuple[str, str, str], str]]:
    """The supply violations of :func:`check_donors`, each with its donor key, in key
    order."""
    keys, qty = sums.donors, sums.given
    if not keys:
        return []
    slot = stock.slots(keys)
    missing = slot == len(stock.on_hand) - 1
    on_hand, safety = stock.on_hand[slot], stock.safety[slot]
    share = _donor_shares(stock.shares, keys)
    cap = share * np.maximum(0.0, on_hand - safety)
    over_share = qty > cap + TOL * np.maximum(1.0, np.abs(cap))
    below_safety = on_hand - qty < safety - TOL * np.maximum(1.0, np.abs(safety))
    problems = []
    bad = np.nonzero(missing | over_share | below_safety)[0].tolist()
    for k in sorted(bad, key=keys.__getitem__):  # violations in key order
        key, amount = keys[k], float(qty[k])
        if missing[k]:
            problems.append((key, f"supply: {key} gives {amount:g} without a stock position"))
            continue
        if over_share[k]:
            problems.append(
                (key, f"supply: {'/'.join(key)} gives {amount:g} > agreed share {float(cap[k]):g}")
            )
        if below_safety[k]:
            problems.append((key, f"supply: {'/'.join(key)} would fall below safety stock"))
    return problems


def _donor_shares(
    shares: reallocation.ShareTable, keys: list[tuple[str, str, str]]
) -> npt.NDArray[np.float64]:
    """``ShareTable.share(partner, material)`` of each (partner, site, material) donor,
    looked up with ``map`` (no Python frame per donor)."""
    partners = list(map(_FIRST, keys))
    share = np.fromiter(map(shares.by_partner.get, partners, repeat(0.0)), np.float64, len(keys))
    if shares.by_partner_material:
        by_material = shares.by_partner_material.get
        named = zip(partners, map(_THIRD, keys), strict=True)
        share = np.maximum(share, np.fromiter(map(by_material, named, repeat(0.0)), np.float64))
    return share


def check_receivers(decision: Decision, sums: OrderSums | None = None) -> list[str]:
    """demand: nobody receives more than its need."""
    return receiver_violations(decision.fulfilment, sums or OrderSums.of(decision))


def receiver_violations(fills: Sequence[NeedFulfilment], sums: OrderSums) -> list[str]:
    """:func:`check_receivers` of fulfilment entries and their sums."""
    requested = sums.requested
    over = sums.fulfilled > requested + TOL * np.maximum(1.0, np.abs(requested))
    return [
        f"demand: need {f.need_id} gets {f.fulfilled:g} > {f.requested:g}"
        for f in (fills[k] for k in np.flatnonzero(over).tolist())
    ]


def check_conservation(decision: Decision, sums: OrderSums | None = None) -> list[str]:
    """What leaves donors arrives at needs, need by need and in total (bought quantities
    are not delivered by orders: with purchase shares only orders for unknown needs are
    checked)."""
    sums = sums or OrderSums.of(decision)
    problems = [] if decision.purchase_shares else delivery_violations(decision.fulfilment, sums)
    return problems + unknown_need_violations(sums.unknown)


def delivery_violations(fills: Sequence[NeedFulfilment], sums: OrderSums) -> list[str]:
    """Fulfilment entries whose orders deliver another quantity than they say."""
    got, fulfilled = sums.received, sums.fulfilled
    off = np.abs(got - fulfilled) > TOL * np.maximum(1.0, np.abs(fulfilled))
    return [
        f"conservation: need {fills[k].need_id} fulfilled {fills[k].fulfilled:g} "
        f"but orders deliver {got[k]:g}"
        for k in np.nonzero(off)[0].tolist()
    ]


def unknown_need_violations(need_ids: Iterable[str]) -> list[str]:
    return [f"conservation: orders for unknown need {n}" for n in need_ids]


def check_tier_priority(
    scenario: Scenario,
    params: ReallocationParameters,
    scope: Scope,
    decision: Decision,
    material_problems: Sequence[reallocation.MaterialProblem] | None = None,
    sums: OrderSums | None = None,
) -> list[str]:
    """tier_priority: no unit could move to an unmet higher-tier need along one lane.

    Checks two local exchanges: a donor with spare capacity and a lane to an
    unmet need (more could be delivered), and a donor serving a lower tier with
    a lane to an unmet higher-tier need (it should have served the higher tier).
    Global optimality is checked against an independent LP in the tests.
    ``material_problems``: the run's material problems (rebuilt from the scenario if
    omitted). Linear in lanes + transfers (numpy over the lanes of all materials at once).
    """
    if not tier_priority_applies(params):
        return []
    if material_problems is None:
        material_problems = reallocation.build_problems(scenario, params, scope)
    return tier_violations(material_problems, sums or OrderSums.of(decision))


def tier_priority_applies(params: ReallocationParameters) -> bool:
    """Whether :func:`check_tier_priority` checks anything: extra hard rules or fairness
    can legitimately block local exchanges."""
    return not (
        params.min_fill
        or params.fairness
        or params.whole_units
        or params.pack_sizes
        or params.min_shipments
    )


def tier_violations(
    material_problems: Sequence[reallocation.MaterialProblem], sums: OrderSums
) -> list[str]:
    """:func:`check_tier_priority` of these materials' problems and the sums of their
    orders and fulfilment entries."""
    # Sources and sinks of every material in one numbering (offsets per material).
    donor_index, need_index = sums.donor_index, sums.need_index
    donor: list[int] = []  # per source: its donor in ``sums`` (-1: gives nothing)
    entry: list[int] = []  # per sink: its fulfilment entry (-1: none)
    src_parts, snk_parts, capacity_parts, tier_parts = [], [], [], []
    src_off, snk_off = [0], [0]
    for mp in material_problems:
        p, material_id = mp.problem, mp.material_id
        donor += map(
            donor_index.get,
            zip(map(_FIRST, p.sources), map(_SECOND, p.sources), repeat(material_id)),
            repeat(-1),
        )
        entry += map(need_index.get, map(_FIRST, p.sinks), repeat(-1))
        src_parts.append(p.arc_source + src_off[-1])
        snk_parts.append(p.arc_sink + snk_off[-1])
        capacity_parts.append(p.capacity)
        tier_parts.append(p.sink_tier)
        src_off.append(src_off[-1] + len(p.sources))
        snk_off.append(snk_off[-1] + len(p.sinks))
    if not entry:
        return []
    arc_src, arc_snk = np.concatenate(src_parts), np.concatenate(snk_parts)
    capacity = np.concatenate(capacity_parts)
    sink_tier = np.concatenate(tier_parts)
    donors = np.array(donor, dtype=np.int64)
    gives = donors >= 0
    # only where a donor gives (with no transfers at all, ``given`` is empty)
    out = np.zeros(len(donors))
    out[gives] = sums.given[donors[gives]]
    serves_tier = np.zeros(len(donors), dtype=np.int64)
    serves_tier[gives] = sums.serves[donors[gives]]
    spare = capacity - out
    spare_tol = TOL * np.maximum(1.0, np.abs(capacity))
    entries = np.array(entry, dtype=np.int64)
    unmet = np.zeros(len(entries), dtype=np.bool_)
    if len(sums.requested):
        unmet = (entries >= 0) & sums.unmet()[entries]
    arcs = np.nonzero(unmet[arc_snk])[0]
    src, snk = arc_src[arcs], arc_snk[arcs]
    has_spare = spare[src] > spare_tol[src]
    bad = has_spare | (serves_tier[src] > sink_tier[snk])
    violations = []
    for i, j, spare_lane in zip(
        src[bad].tolist(), snk[bad].tolist(), has_spare[bad].tolist(), strict=True
    ):
        m = bisect_right(src_off, i) - 1
        mp = material_problems[m]
        donor_ = mp.problem.sources[i - src_off[m]]
        need = mp.problem.sinks[j - snk_off[m]]
        if spare_lane:
            violations.append(
                f"tier_priority: {mp.material_id} donor {donor_.ref} has {spare[i]:g} spare "
                f"and a lane to unmet need {need.need_id}"
            )
        else:
            violations.append(
                f"tier_priority: {mp.material_id} donor {donor_.ref} serves tier "
                f"{serves_tier[i]} while tier {need.tier} need {need.need_id} is unmet"
            )
    return violations


def check_capacity(scenario: Scenario, params: CapacityParameters, decision: Decision) -> list[str]:
    """supply/lanes for capacity: within offered hours, only qualified lending providers
    whose offer starts by the need's date."""
    offers = {o.offer_id: o for o in scenario.capacity_offers}
    needs = {n.need_id: n for n in scenario.capacity_needs}
    used: dict[str, float] = defaultdict(float)
    problems = []
    for a in decision.capacity_assignments:
        used[a.offer_id] += a.hours
        offer, need = offers[a.offer_id], needs[a.need_id]
        if not set(need.required_qualifications) <= set(offer.qualifications):
            problems.append(f"lanes: offer {a.offer_id} lacks qualifications for {a.need_id}")
        if not capacity.lends(scenario, offer) or offer.capability != need.capability:
            problems.append(f"lanes: offer {a.offer_id} may not serve {a.need_id}")
        if not capacity.in_time(offer, need):
            problems.append(
                f"lanes: offer {a.offer_id} starts {offer.available_from} after {a.need_id}"
                f" is due ({need.needed_by})"
            )
    for offer_id, hours in sorted(used.items()):
        if hours > offers[offer_id].hours + _tol(offers[offer_id].hours):
            problems.append(f"supply: offer {offer_id} assigned {hours:g} h > offered")
    return problems


def check_purchasing(decision: Decision) -> list[str]:
    """Nobody pays more than alone; everybody gets at least its demand."""
    problems = []
    for s in decision.purchase_shares:
        if s.cost_pooled > s.cost_alone + _tol(s.cost_alone):
            problems.append(
                f"no_worse_than_alone: {s.partner_id} pays {s.cost_pooled:g}"
                f" > alone {s.cost_alone:g}"
            )
    for f in decision.fulfilment:
        if f.fulfilled < f.requested - _tol(f.requested) and decision.purchase_shares:
            problems.append(f"cover_demand: {f.partner_id} gets less than its demand")
    return problems


def check_decision(
    scenario: Scenario,
    params: ReallocationParameters | CapacityParameters | object,
    scope: Scope,
    decision: Decision,
    material_problems: Sequence[reallocation.MaterialProblem] | None = None,
) -> list[str]:
    """Every invariant that applies to the decision's kind (empty list: all good).

    ``material_problems``: the run's material problems, reused by the tier-priority check
    instead of rebuilding them (reallocation only).
    """
    sums = OrderSums.of(decision)
    problems = check_receivers(decision, sums) + check_conservation(decision, sums)
    if isinstance(params, ReallocationParameters):
        problems += check_donors(scenario, decision, sums)
        if decision.status.proven_optimal:
            problems += check_tier_priority(
                scenario, params, scope, decision, material_problems, sums
            )
    elif isinstance(params, CapacityParameters):
        problems += check_capacity(scenario, params, decision)
    else:
        problems += check_purchasing(decision)
    return problems


def unmet_by_tier(decision: Decision) -> dict[int, float]:
    """Unmet quantity per tier: each fulfilment's ``unmet`` summed in order (bincount
    adds them one by one like a loop would), rounded to 6 decimals."""
    fills = decision.fulfilment
    tier = np.fromiter(map(_TIER, fills), np.int64, len(fills))
    requested = np.fromiter(map(_REQUESTED, fills), np.float64, len(fills))
    fulfilled = np.fromiter(map(_FULFILLED, fills), np.float64, len(fills))
    if not len(tier):
        return {}
    if tier.min() < 0:  # not a tier (validated models have 1..3): summed one by one
        result: dict[int, float] = defaultdict(float)
        for f in fills:
            result[f.tier] += f.unmet
        return {t: float(np.round(v, 6)) for t, v in sorted(result.items())}
    unmet = np.bincount(tier, weights=np.maximum(0.0, requested - fulfilled))
    return {t: float(np.round(unmet[t], 6)) for t in np.unique(tier).tolist()}
