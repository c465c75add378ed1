"""Material reallocation: surplus above safety stock moves to partners in need.

Build (scenario -> one transportation problem per material), solve (see
:mod:`protocols.dispatch`), assign (flows -> transfer orders and fulfilment).
"""

from __future__ import annotations

import dataclasses
import hashlib
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, repeat
from operator import attrgetter
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from protocols.decisions import NeedFulfilment, TransferOrder
from protocols.rounding import round_list
from protocols.sites import SiteTable
from protocols.transport import (
    Sink,
    Source,
    TransportOptions,
    TransportProblem,
    TransportSolution,
    Vocabulary,
)
from schemas.protocol import ReallocationParameters, Scope
from schemas.scenario import Scenario, ScenarioNeed, ScenarioPosition

ROUND = 6
MIN_FLOW = 1e-5


def clean_flows(flows: np.ndarray) -> np.ndarray:
    """Round to 6 decimals and drop solver noise below ``MIN_FLOW``."""
    rounded = np.round(flows, ROUND)
    return np.where(rounded < MIN_FLOW, 0.0, rounded)


def in_scope(scenario: Scenario, scope: Scope, partner_id: str) -> bool:
    partner = scenario.partner_by_id[partner_id]
    if scope.sectors and partner.sector not in scope.sectors:
        return False
    return not (scope.regions and partner.region not in scope.regions)


def scoped_materials(scenario: Scenario, scope: Scope) -> list[str]:
    ids = sorted(m.id for m in scenario.materials)
    return [m for m in ids if not scope.materials or m in scope.materials]


class ShareTable:
    """Largest agreed surplus share per (partner, material), indexed once per scenario.

    Looking a share up is O(1); scanning every agreement per position would make
    model building quadratic (positions x agreements).
    """

    def __init__(self, scenario: Scenario) -> None:
        #: largest share of the partner's agreements covering all materials
        self.by_partner: dict[str, float] = {}
        #: largest share of the partner's agreements naming the material
        self.by_partner_material: dict[tuple[str, str], float] = {}
        for a in scenario.agreements.surplus_sharing:
            if a.materials is None:
                self.by_partner[a.partner_id] = max(self.by_partner.get(a.partner_id, 0.0), a.share)
            else:
                for material_id in a.materials:
                    key = (a.partner_id, material_id)
                    self.by_partner_material[key] = max(
                        self.by_partner_material.get(key, 0.0), a.share
                    )

    def share(self, partner_id: str, material_id: str) -> float:
        return max(
            self.by_partner.get(partner_id, 0.0),
            self.by_partner_material.get((partner_id, material_id), 0.0),
        )


def donor_share(scenario: Scenario, partner_id: str, material_id: str) -> float:
    """The largest share an agreement of the partner allows for the material (0 if none)."""
    shares = [
        a.share
        for a in scenario.agreements.surplus_sharing
        if a.partner_id == partner_id and (a.materials is None or material_id in a.materials)
    ]
    return max(shares, default=0.0)


def surplus(on_hand: float, safety_stock: float) -> float:
    return max(0.0, on_hand - safety_stock)


def donor_capacity(
    scenario: Scenario, partner_id: str, material_id: str, on_hand: float, safety_stock: float
) -> float:
    return donor_share(scenario, partner_id, material_id) * surplus(on_hand, safety_stock)


def vocabulary(params: ReallocationParameters, unit: str) -> Vocabulary:
    lanes = "transfers only between sites with an allowed lane"
    if params.max_distance_km is not None:
        lanes += f" (at most {params.max_distance_km:g} km apart)"
    return Vocabulary(
        supply="donors give at most their agreed share of stock above safety stock",
        demand="no receiver gets more than its need",
        lanes=lanes,
        unit=unit,
        lots="transfers in whole units or packs",
        min_shipment="minimum shipment size",
    )


def lane_cost_matrix(
    scenario: Scenario,
    sources: Sequence[Source],
    sinks: Sequence[Sink],
    sites: SiteTable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(distance km, unit cost) for every source x sink; the lane table overrides distance."""
    sites = sites or SiteTable(scenario)
    return sites.distance_and_cost(
        sites.of([(s.partner_id, s.site_id) for s in sources]),
        sites.of([(s.partner_id, s.site_id) for s in sinks]),
    )


@dataclass(frozen=True)
class MaterialProblem:
    material_id: str
    unit: str
    problem: TransportProblem
    distance: np.ndarray  # per arc


def partners_in_scope(scenario: Scenario, scope: Scope) -> set[str]:
    return {p.id for p in scenario.partners if in_scope(scenario, scope, p.id)}


def build_problems(
    scenario: Scenario, params: ReallocationParameters, scope: Scope
) -> list[MaterialProblem]:
    """One transportation problem per material in scope, in material id order.

    Linear in positions + needs + lanes: shares, sites, lane costs and the scope are
    indexed once per scenario, not looked up per position or per material.
    """
    return list(iter_problems(scenario, params, scope))


def iter_problems(
    scenario: Scenario, params: ReallocationParameters, scope: Scope
) -> Iterator[MaterialProblem]:
    """The problems of :func:`build_problems`, yielded group by group: a solver can
    start on the first ones while the later ones are built.

    One cheap pass files positions and needs by material; each group's sources and
    sinks are made when the group is built (so the first group is ready after a
    fraction of the per-position work). The lanes of a group of materials are made
    with numpy at once: every (source, sink) pair of each material in row-major order,
    its great-circle distance (:meth:`protocols.sites.SiteTable.pair_distance`, the
    same values as the per-material matrix) and lane-table cost, then the allowed
    pairs.
    """
    sites = SiteTable(scenario)
    ends = _Ends(scenario, params, scope, sites.index)
    positions = _by_material(scenario.positions)
    needs = _by_material(scenario.needs)
    words = vocabulary(params, "")
    words_by_unit: dict[str, Vocabulary] = {}
    min_fill = tuple(sorted((m.tier, m.fraction) for m in params.min_fill))
    options_by_lots: dict[tuple[float | None, float | None], TransportOptions] = {}
    group: list[tuple[str, list[Source], list[int], list[Sink]]] = []
    size = _FIRST_GROUP
    materials = scoped_materials(scenario, scope)
    for k, material_id in enumerate(materials):
        held = positions.get(material_id, [])
        sinks = ends.sinks(needs.get(material_id, []), held)
        if sinks:
            sources, src_sites = ends.sources(held)
            group.append((material_id, sources, src_sites, sinks))
        if group and (len(group) == size or k == len(materials) - 1):
            for material_id, sources, sinks, arcs in _lanes(group, sites, params):
                material = scenario.material_by_id[material_id]
                step = None
                if params.pack_sizes and material.pack_size:
                    step = material.pack_size
                elif params.whole_units or params.pack_sizes:
                    step = 1.0
                min_lot = material.min_shipment if params.min_shipments else None
                options = options_by_lots.get((step, min_lot))
                if options is None:
                    options = options_by_lots[step, min_lot] = TransportOptions(
                        fairness=params.fairness, step=step, min_lot=min_lot, min_fill=min_fill
                    )
                unit = material.unit.value
                if unit not in words_by_unit:
                    words_by_unit[unit] = dataclasses.replace(words, unit=unit)
                arc_src, arc_snk, arc_cost, arc_dist = arcs
                problem = TransportProblem(
                    material_id,
                    tuple(sources),
                    tuple(sinks),
                    arc_src,
                    arc_snk,
                    arc_cost,
                    options,
                    words_by_unit[unit],
                )
                yield MaterialProblem(material_id, unit, problem, arc_dist)
            group = []
            size *= 2


_T = TypeVar("_T", ScenarioPosition, ScenarioNeed)
_MATERIAL_ID = attrgetter("material_id")


def _by_material(items: Sequence[_T]) -> dict[str, list[_T]]:
    """``items`` filed by material, each material's in their order."""
    filed: dict[str, list[_T]] = {}
    for material_id, item in zip(map(_MATERIAL_ID, items), items, strict=True):
        bucket = filed.get(material_id)
        if bucket is None:
            bucket = filed[material_id] = []
        bucket.append(item)
    return filed


class _Ends:
    """Sources (donors) and sinks (needs, position shortfalls) of one material, from
    its positions and needs, with the scope, shares and sites indexed once."""

    def __init__(
        self,
        scenario: Scenario,
        params: ReallocationParameters,
        scope: Scope,
        site_index: dict[tuple[str, str], int],
    ) -> None:
        shares = ShareTable(scenario)
        self.share_all, self.share_some = shares.by_partner, shares.by_partner_material
        self.scoped = partners_in_scope(scenario, scope)
        self.partner_by_id = scenario.partner_by_id
        self.site_index = site_index
        self.shortfalls = params.include_position_shortfalls
        self.as_of = scenario.as_of
        self.refs: dict[tuple[str, str], str] = {}

    def sources(self, held: list[ScenarioPosition]) -> tuple[list[Source], list[int]]:
        """Positions above safety stock with an agreed share, and their site indices."""
        scoped, share_all, share_some = self.scoped, self.share_all, self.share_some
        refs, site_index = self.refs, self.site_index
        new = _tuple_new
        sources: list[Source] = []
        site_ids: list[int] = []
        for partner_id, site_id, material_id, on_hand, safety_stock in map(_POSITION_FIELDS, held):
            if on_hand <= safety_stock or partner_id not in scoped:
                continue
            share = max(
                share_all.get(partner_id, 0.0), share_some.get((partner_id, material_id), 0.0)
            )
            cap = share * (on_hand - safety_stock)
            if cap > 0:
                key = (partner_id, site_id)
                ref = refs.get(key)
                if ref is None:
                    ref = refs[key] = f"{partner_id}/{site_id}"
                sources.append(new(Source, (partner_id, site_id, cap, ref)))
                site_ids.append(site_index[key])
        return sources, site_ids

    def sinks(self, needs: list[ScenarioNeed], held: list[ScenarioPosition]) -> list[Sink]:
        """Needs in scope with a quantity, then (if the protocol says so) positions
        below safety stock."""
        scoped, partner_by_id = self.scoped, self.partner_by_id
        new = _tuple_new
        sinks: list[Sink] = []
        for need_id, partner_id, site_id, _, quantity, needed_by, crit in map(_NEED_FIELDS, needs):
            if quantity <= 0 or partner_id not in scoped:
                continue
            tier = (crit or partner_by_id[partner_id].criticality).tier
            sinks.append(new(Sink, (need_id, partner_id, site_id, quantity, tier, needed_by)))
        if not self.shortfalls:
            return sinks
        for partner_id, site_id, material_id, on_hand, safety_stock in map(_POSITION_FIELDS, held):
            if on_hand < safety_stock and partner_id in scoped:
                sinks.append(
                    Sink(
                        f"shortfall-{partner_id}-{site_id}-{material_id}",
                        partner_id,
                        site_id,
                        safety_stock - on_hand,
                        partner_by_id[partner_id].criticality.tier,
                        self.as_of,
                    )
                )
        return sinks


#: ``tuple.__new__(Source, fields)``: the record without the Python frame of the named
#: tuple's ``__new__`` (half the time; thousands per run; every field is given).
_tuple_new = tuple.__new__
_POSITION_FIELDS = attrgetter("partner_id", "site_id", "material_id", "on_hand", "safety_stock")
_NEED_FIELDS = attrgetter(
    "need_id", "partner_id", "site_id", "material_id", "quantity", "needed_by", "criticality"
)

#: Materials in the first group of :func:`iter_problems` (each later group is twice
#: as large): small, so that solving starts early.
_FIRST_GROUP = 8

_Arcs = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]


def _lanes(
    group: list[tuple[str, list[Source], list[int], list[Sink]]],
    sites: SiteTable,
    params: ReallocationParameters,
) -> Iterator[tuple[str, list[Source], list[Sink], _Arcs]]:
    """Per material of ``group``: its allowed lanes (source, sink, cost, distance), in
    row-major order of sources x sinks, as :func:`build_arcs` makes them."""
    n_src = np.array([len(sources) for _, sources, _, _ in group], dtype=np.int64)
    n_snk = np.array([len(sinks) for _, _, _, sinks in group], dtype=np.int64)
    src_site = np.array([i for _, _, ids, _ in group for i in ids], dtype=np.int64)
    snk_site = sites.of([(s.partner_id, s.site_id) for _, _, _, sinks in group for s in sinks])
    pairs = n_src * n_snk
    pair_material = np.repeat(np.arange(len(group)), pairs)
    within = np.arange(int(pairs.sum())) - (np.cumsum(pairs) - pairs)[pair_material]
    per_row = n_snk[pair_material]
    local_src = within // np.maximum(per_row, 1)
    local_snk = within - local_src * per_row
    a = src_site[(np.cumsum(n_src) - n_src)[pair_material] + local_src]
    b = snk_site[(np.cumsum(n_snk) - n_snk)[pair_material] + local_snk]
    dist, cost = sites.pair_distance_and_cost(a, b)
    allowed = a != b  # never to the same site
    if params.max_distance_km is not None:
        allowed &= dist <= params.max_distance_km
    keep = np.flatnonzero(allowed)
    ends = np.cumsum(np.bincount(pair_material[keep], minlength=len(group))).tolist()
    arc_src, arc_snk = local_src[keep], local_snk[keep]
    arc_cost, arc_dist = cost[keep], dist[keep]
    start = 0
    for (material_id, sources, _, sinks), end in zip(group, ends, strict=True):
        arcs = (arc_src[start:end], arc_snk[start:end], arc_cost[start:end], arc_dist[start:end])
        yield material_id, sources, sinks, arcs
        start = end


_new = object.__new__
_set = object.__setattr__
_ORDER_FIELDS = frozenset(TransferOrder.model_fields)
_FULFILMENT_FIELDS = frozenset(NeedFulfilment.model_fields)
_sha256 = hashlib.sha256


def assign(
    mp: MaterialProblem, solution: TransportSolution
) -> tuple[list[TransferOrder], list[NeedFulfilment]]:
    """Transfer orders and per-need fulfilment from a solution's flows (see
    :func:`assign_many`)."""
    orders, fills, _ = assign_many([mp], [solution])
    return orders, fills


def assign_many(
    mps: Sequence[MaterialProblem], solutions: Sequence[TransportSolution]
) -> tuple[list[TransferOrder], list[NeedFulfilment], list[int]]:
    """Transfer orders and per-need fulfilment of several solved materials, material by
    material (the same orders and fulfilments as one call per material), and where
    each material's orders end in the list.

    The array work (cleaning flows, picking the lanes that carry flow, rounding
    quantities' costs and distances) runs once over all materials: per material it
    cost about as much as making 20 orders.

    Orders are built as :func:`protocols.decisions.trusted` builds models (inlined
    here): every field comes from already validated scenario data or from float
    conversions here, and pydantic validation of ~20,000 orders would cost more than
    100 ms at 200 x 100 (the invariants are checked on the decision afterwards). Order
    ids are :func:`protocols.decisions.order_id` of (material, donor partner, donor
    site, need), from the hashed prefix of each donor (the same bytes).

    The orders of one call share one ``model_fields_set`` (all fields, as
    ``model_construct`` would set them): one set per call instead of one per order,
    half the objects the garbage collector scans after the run. Pydantic never changes
    it in place (frozen models; ``model_copy`` copies it first, tested).
    """
    if not mps:
        return [], [], []
    problems = [mp.problem for mp in mps]
    n_src = [len(p.sources) for p in problems]
    n_snk = [len(p.sinks) for p in problems]
    n_arc = np.array([p.n_arcs for p in problems], dtype=np.int64)
    material_of_arc = np.repeat(np.arange(len(mps)), n_arc)
    src_off = np.concatenate(([0], np.cumsum(n_src)))
    snk_off = np.concatenate(([0], np.cumsum(n_snk)))
    flows = clean_flows(_joined([s.flows for s in solutions], np.float64))
    arc_src = _joined([p.arc_source for p in problems], np.int64) + src_off[material_of_arc]
    arc_snk = _joined([p.arc_sink for p in problems], np.int64) + snk_off[material_of_arc]
    arcs = np.flatnonzero(flows > 0)
    sources = list(chain.from_iterable(p.sources for p in problems))
    sinks = list(chain.from_iterable(p.sinks for p in problems))
    first_source = src_off[:-1].tolist()
    prefixes: dict[int, tuple[str, str, bytes, str, str]] = {}
    needs: dict[int, tuple[str, str, str, date, bytes]] = {}
    fields_set = set(_ORDER_FIELDS)
    orders: list[TransferOrder] = []
    append = orders.append
    cls = TransferOrder
    qty = flows[arcs]
    # rounded as ``round`` rounds, all materials' orders at once (protocols.rounding)
    for i, j, quantity, distance_km, cost in zip(
        arc_src[arcs].tolist(),
        arc_snk[arcs].tolist(),
        qty.tolist(),
        round_list(_joined([mp.distance for mp in mps], np.float64)[arcs], 3),
        round_list(qty * _joined([p.arc_cost for p in problems], np.float64)[arcs], ROUND),
        strict=True,
    ):
        donor = prefixes.get(i)
        if donor is None:
            mp = mps[bisect_right(first_source, i) - 1]
            from_partner, from_site = sources[i][:2]
            prefix = f"{mp.material_id}|{from_partner}|{from_site}|".encode()
            donor = prefixes[i] = (from_partner, from_site, prefix, mp.material_id, mp.unit)
        need = needs.get(j)
        if need is None:
            need_id, to_partner, to_site, _, _, due = sinks[j]
            need = needs[j] = (need_id, to_partner, to_site, due, need_id.encode())
        from_partner, from_site, prefix, material_id, unit = donor
        need_id, to_partner, to_site, due, need_bytes = need
        values = {  # keys sorted: see protocols.decisions.presorted_list_json
            "cost": cost,
            "distance_km": distance_km,
            "due": due,
            "from_partner": from_partner,
            "from_site": from_site,
            "material_id": material_id,
            "need_id": need_id,
            "order_id": "tr-" + _sha256(prefix + need_bytes).hexdigest()[:20],
            "quantity": quantity,
            "to_partner": to_partner,
            "to_site": to_site,
            "unit": unit,
        }
        order = _new(cls)
        _set(order, "__dict__", values)
        _set(order, "__pydantic_fields_set__", fields_set)
        _set(order, "__pydantic_extra__", None)
        _set(order, "__pydantic_private__", None)
        append(order)
    ends = np.cumsum(np.bincount(material_of_arc[arcs], minlength=len(mps))).tolist()
    received = np.bincount(arc_snk, weights=flows, minlength=len(sinks))
    items = list(chain.from_iterable(map(repeat, (mp.material_id for mp in mps), n_snk)))
    return orders, _fulfilments(sinks, received, items), ends


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts).astype(dtype, copy=False)


def fulfilment_of(
    p: TransportProblem, flows: npt.NDArray[np.float64], item: str
) -> list[NeedFulfilment]:
    """Requested vs. delivered per need (sink) of a solved transport problem."""
    received = np.bincount(p.arc_sink, weights=flows, minlength=len(p.sinks))
    return _fulfilments(p.sinks, received, [item] * len(p.sinks))


def _fulfilments(
    sinks: Sequence[Sink], received: np.ndarray, items: list[str]
) -> list[NeedFulfilment]:
    """One fulfilment per sink (one ``model_fields_set`` for all, as in
    :func:`assign_many`)."""
    inflow = round_list(received.astype(np.float64, copy=False), ROUND)
    fields_set = set(_FULFILMENT_FIELDS)
    fills: list[NeedFulfilment] = []
    append = fills.append
    cls = NeedFulfilment
    for (need_id, partner_id, _, demand, tier, _), got, item in zip(
        sinks, inflow, items, strict=True
    ):
        values = {  # keys sorted: see protocols.decisions.presorted_list_json
            "fulfilled": got,
            "item": item,
            "need_id": need_id,
            "partner_id": partner_id,
            "requested": demand,
            "tier": tier,
        }
        fill = _new(cls)
        _set(fill, "__dict__", values)
        _set(fill, "__pydantic_fields_set__", fields_set)
        _set(fill, "__pydantic_extra__", None)
        _set(fill, "__pydantic_private__", None)
        append(fill)
    return fills
