"""What the operations console shows, folded from Kafka records and built into views (pure).

No I/O and no clocks: records arrive as decoded JSON objects, times are passed in. The
service feeds :class:`OpsState` from ``verbund.alerts``, ``verbund.runs``,
``verbund.decisions`` and ``verbund.partner.orders``; the view functions turn it (plus the
alliance directory and the ledger replica's freshness) into the JSON the page, the API and
``verbund status`` show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.alliance import Alliance
from schemas.common import Severity
from services.common.aggregates import (
    Contribution,
    build_tables,
    generic_explanation,
    generic_run_detail,
    table_view,
)
from services.ledger.state import PartitionState

ShortageKey = tuple[str, str, str]  # partner, site, material
UNKNOWN_REGION = "unknown"
SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)  # watch < shortage < critical
_RANK = {s.value: s.rank for s in Severity}


def severity_rank(severity: str | None) -> int:
    return _RANK.get(severity or "", 0)


def _require(message: Mapping[str, Any], optional: bool = False, **fields: Any) -> None:
    """Refuse (ValueError) a record whose fields the views rely on are missing or of the wrong
    type, before it is stored: one bad record must not break every view and the stream.
    ``optional``: the fields may be absent or null."""
    for name, kind in fields.items():
        value = message.get(name)
        if optional and value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            shown = repr(value)[:60]
            raise ValueError(f"{message.get('type')}: field {name!r} is {shown}, not {kind}")


@dataclass
class OpsState:
    """Open shortages, runs, decisions and orders as last reported on Kafka."""

    shortages: dict[ShortageKey, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- inputs: each returns True when the views changed ----------------------------------
    def apply_alert(self, alert: Mapping[str, Any]) -> bool:
        """The latest ShortageDetected per partner/site/material is open until ShortageResolved.

        Alerts of one material share a partition (keyed by material), so Kafka's order is
        the order in which the ledger saw them.
        """
        kind = alert.get("type")
        if kind not in ("ShortageDetected", "ShortageResolved"):
            return False
        key = (str(alert["partner_id"]), str(alert["site_id"]), str(alert["material_id"]))
        if kind == "ShortageDetected":
            _require(alert, severity=str, unit=str)
            _require(alert, optional=True, causes=list)
        if kind == "ShortageResolved":
            return self.shortages.pop(key, None) is not None
        self.shortages[key] = dict(alert)
        return True

    def apply_run(self, update: Mapping[str, Any]) -> bool:
        """The latest RunUpdated per run (one partition: Kafka's order is the run's order)."""
        if update.get("type") != "RunUpdated":
            return False
        _require(update, run_id=str, protocol_id=str, state=str)
        _require(update, optional=True, revision=int, approvals=list)
        self.runs[str(update["run_id"])] = dict(update)
        return True

    def apply_decision(self, decision: Mapping[str, Any]) -> bool:
        if decision.get("type") != "DecisionPublished":
            return False
        _require(decision, run_id=str, revision=int, protocol_id=str)
        _require(decision, optional=True, unmet_by_tier=dict, requested_by_tier=dict)
        run_id = str(decision["run_id"])
        current = self.decisions.get(run_id)
        if current is not None and int(current["revision"]) > int(decision["revision"]):
            return False
        self.decisions[run_id] = dict(decision)
        return True

    def apply_order(self, message: Mapping[str, Any]) -> bool:
        """OrderIssued (one copy per involved partner) creates an order, OrderUpdated sets its
        state; both copies of an order share one entry."""
        kind = message.get("type")
        order_id = str(message.get("order_id", ""))
        if kind in ("OrderIssued", "OrderUpdated"):
            _require(message, order_id=str, run_id=str, revision=int)
        if kind == "OrderIssued":
            _require(message, recipient=str)
            _require(message, optional=True, order=dict)
            order = self.orders.setdefault(
                order_id,
                {
                    "order_id": order_id,
                    "state": "pending",
                    "state_at": "",
                    "reason": "",
                    "recipients": [],
                    "responder": None,
                },
            )
            order.update(
                run_id=message["run_id"],
                revision=message["revision"],
                kind=message["kind"],
                order=message.get("order", {}),
                respond_by=message.get("respond_by"),
                issued_at=message.get("at"),
            )
            recipient = str(message["recipient"])
            if recipient not in order["recipients"]:
                order["recipients"].append(recipient)
            if message.get("must_answer"):
                order["responder"] = recipient
            return True
        if kind == "OrderUpdated":
            _require(message, state=str)
            order = self.orders.setdefault(
                order_id,
                {
                    "order_id": order_id,
                    "run_id": message["run_id"],
                    "revision": message["revision"],
                    "kind": None,
                    "order": {},
                    "recipients": [],
                    "responder": None,
                    "state": "pending",
                    "state_at": "",
                    "reason": "",
                },
            )
            if str(order["state_at"]) > str(message["at"]):
                return False
            order.update(state=message["state"], state_at=message["at"], reason=message["reason"])
            return True
        return False


# -- views -----------------------------------------------------------------------------------
def region_of(alliance: Alliance | None, partner_id: str) -> str:
    partner = alliance.partner(partner_id) if alliance is not None else None
    return partner.region if partner is not None else UNKNOWN_REGION


def board_view(shortages: Iterable[Mapping[str, Any]], alliance: Alliance | None) -> dict[str, Any]:
    """Open shortages as a material x region grid: per cell the worst severity and counts."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    totals = dict.fromkeys(SEVERITIES, 0)
    for alert in shortages:
        material = str(alert["material_id"])
        region = region_of(alliance, str(alert["partner_id"]))
        severity = str(alert["severity"])
        cell = cells.setdefault(
            (material, region),
            {"material": material, "region": region, "worst": None, "count": 0}
            | {"by_severity": dict.fromkeys(SEVERITIES, 0), "partners": []},
        )
        cell["count"] += 1
        cell["by_severity"][severity] = cell["by_severity"].get(severity, 0) + 1
        if severity_rank(severity) > severity_rank(cell["worst"]):
            cell["worst"] = severity
        if alert["partner_id"] not in cell["partners"]:
            cell["partners"].append(alert["partner_id"])
        totals[severity] = totals.get(severity, 0) + 1
    materials = sorted({m for m, _ in cells})
    regions = sorted({r for _, r in cells})
    for cell in cells.values():
        cell["partners"].sort()
    by_material = [
        {
            "material": material,
            "count": sum(c["count"] for (m, _), c in cells.items() if m == material),
            "by_severity": {
                s: sum(c["by_severity"][s] for (m, _), c in cells.items() if m == material)
                for s in SEVERITIES
            },
        }
        for material in materials
    ]
    by_material.sort(key=lambda row: tuple(-row["by_severity"][s] for s in reversed(SEVERITIES)))
    return {
        "materials": materials,
        "regions": regions,
        "cells": [cells[key] for key in sorted(cells)],
        "totals": totals,
        "open": sum(totals.values()),
        "by_material": by_material,
    }


def freshness_view(
    last_seen: Mapping[str, float],
    alliance: Alliance | None,
    now: float,
    stale_after: float,
    removed: Iterable[str] = (),
) -> dict[str, Any]:
    """Age of every partner's newest data; partners of the alliance that never reported and
    partners older than ``stale_after`` seconds are stale. Stale partners first, oldest first.
    Partners removed from the alliance (PartnerRemoved) are not listed."""
    partners: dict[str, dict[str, Any]] = {}
    gone = set(removed)
    if alliance is not None:
        for partner in alliance.partners:
            if partner.id in gone:
                continue
            partners[partner.id] = {
                "partner": partner.id,
                "name": partner.name,
                "region": partner.region,
                "sector": partner.sector,
            }
    for partner_id in last_seen:
        if partner_id in gone:
            continue
        partners.setdefault(
            partner_id,
            {"partner": partner_id, "name": partner_id, "region": UNKNOWN_REGION, "sector": ""},
        )
    rows = []
    for partner_id, row in partners.items():
        seen = last_seen.get(partner_id)
        age = None if seen is None else max(0.0, now - seen)
        rows.append(
            row
            | {
                "last_seen": seen,
                "age_seconds": age,
                "stale": age is None or age > stale_after,
            }
        )
    rows.sort(
        key=lambda r: (
            not r["stale"],
            -(r["age_seconds"] if r["age_seconds"] is not None else float("inf")),
            r["partner"],
        )
    )
    return {
        "stale_after_seconds": stale_after,
        "partners": rows,
        "stale": sum(1 for r in rows if r["stale"]),
        "total": len(rows),
    }


def runs_view(
    runs: Iterable[Mapping[str, Any]],
    decisions: Mapping[str, Mapping[str, Any]] | None = None,
    full: bool = True,
) -> list[dict[str, Any]]:
    """Runs, newest first; ``awaiting`` says whether an approval decision is pending.

    Without ``full`` (roles other than coordinator) a run's detail passes only when it
    carries nothing but counts: a failed run's (the decision's explanation, a solver error)
    becomes a generic text naming the status of its decision (``decisions``, by run id)."""
    rows = [
        {
            "run_id": r["run_id"],
            "protocol_id": r["protocol_id"],
            "protocol_version": r.get("protocol_version"),
            "state": r["state"],
            "active": r["state"] in ("awaiting_approval", "solving", "published"),
            "awaiting": r["state"] == "awaiting_approval",
            "revision": r.get("revision", 0),
            "trigger": r.get("trigger", ""),
            "approvals": list(r.get("approvals", [])),
            "approvals_needed": r.get("approvals_needed", 0),
            "detail": r.get("detail", "")
            if full
            else generic_run_detail(
                str(r["state"]), str(r.get("detail", "")), _status_of(r, decisions or {})
            ),
            "at": r.get("at"),
        }
        for r in runs
    ]
    rows.sort(key=lambda r: str(r["at"]), reverse=True)
    return rows


def _status_of(run: Mapping[str, Any], decisions: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The status of the decision of the run's latest revision, if the console has it."""
    decision = decisions.get(str(run["run_id"]))
    if decision is None or int(decision.get("revision", 0)) != int(run.get("revision", 0)):
        return None
    return str(decision.get("status", ""))


def decisions_view(
    decisions: Iterable[Mapping[str, Any]],
    orders: Iterable[Mapping[str, Any]],
    with_orders: bool = True,
    figures: bool = True,
) -> list[dict[str, Any]]:
    """Decisions, newest first, each with its orders (all revisions) and their states;
    without ``with_orders`` only the counts by state (no partner, no quantity).

    Without ``figures`` (roles other than coordinator) no per-tier figure and no explanation:
    a tier's requested or unmet quantity is a partner's own figure when few partners are in
    that tier (one needy partner: its need), and the summary does not say how many partners
    stand behind a tier, so the k-partner rule of the aggregates cannot be applied here --
    every tier is ``null``. The explanation becomes a generic text naming the status."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for order in orders:
        by_run.setdefault(str(order.get("run_id")), []).append(_order_row(order))
    rows = []
    for d in decisions:
        run_orders = sorted(
            by_run.get(str(d["run_id"]), []),
            key=lambda o: (-int(o["revision"] or 0), o["order_id"]),
        )
        states: dict[str, int] = {}
        for o in run_orders:
            if o["revision"] == d["revision"]:
                states[o["state"]] = states.get(o["state"], 0) + 1
        rows.append(
            {
                "run_id": d["run_id"],
                "revision": d["revision"],
                "protocol_id": d["protocol_id"],
                "kind": d.get("kind", ""),
                "status": d.get("status", ""),
                "proven_optimal": d.get("proven_optimal", False),
                "explanation": d.get("explanation", "")
                if figures
                else generic_explanation(str(d.get("status", "")), str(d.get("explanation", ""))),
                "unmet_by_tier": _tiers(d.get("unmet_by_tier", {}), figures),
                "requested_by_tier": _tiers(d.get("requested_by_tier", {}), figures),
                "orders_count": d.get("orders", len(run_orders)),
                "order_states": states,
                "orders": run_orders if with_orders else [],
                "at": d.get("at"),
            }
        )
    rows.sort(key=lambda r: str(r["at"]), reverse=True)
    return rows


def _tiers(by_tier: Mapping[str, Any], figures: bool) -> dict[str, Any]:
    return dict(by_tier) if figures else dict.fromkeys(by_tier)


def _order_row(order: Mapping[str, Any]) -> dict[str, Any]:
    payload: Mapping[str, Any] = order.get("order") or {}
    return {
        "order_id": order["order_id"],
        "revision": order.get("revision"),
        "kind": order.get("kind"),
        "responder": order.get("responder"),
        "recipients": sorted(order.get("recipients", [])),
        "state": order.get("state", "pending"),
        "reason": order.get("reason", ""),
        "summary": order_summary(order.get("kind"), payload),
        "respond_by": order.get("respond_by"),
    }


def order_summary(kind: Any, payload: Mapping[str, Any]) -> str:
    """One readable line for an order payload (transfer, capacity, purchase)."""
    quantity = payload.get("quantity")
    amount = f"{quantity:g}" if isinstance(quantity, int | float) else str(quantity or "")
    unit = payload.get("unit", "")
    if kind == "transfer":
        return (
            f"{amount} {unit} {payload.get('material_id', '')} "
            f"{payload.get('from_partner', '?')} -> {payload.get('to_partner', '?')}"
        ).replace("  ", " ")
    parts = [f"{k}={v}" for k, v in sorted(payload.items()) if not isinstance(v, dict | list)]
    return ", ".join(parts[:6])


def summary_view(
    board: Mapping[str, Any], freshness: Mapping[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Headline figures for the page header and ``verbund status``."""
    return {
        "open_shortages": board["open"],
        "critical": board["totals"].get("critical", 0),
        "stale_partners": freshness["stale"],
        "partners": freshness["total"],
        "active_runs": sum(1 for r in runs if r["active"]),
        "awaiting_approval": sum(1 for r in runs if r["awaiting"]),
    }


# -- need-to-know: who sees which view -------------------------------------------------------
OPERATOR, COORDINATOR, AUDITOR, PARTNER = "operator", "coordinator", "auditor", "partner"
VIEWS_BY_ROLE: dict[str, tuple[str, ...]] = {
    # the neutral office: what a protocol run needs (shortages by partner, orders)
    COORDINATOR: ("summary", "board", "aggregates", "freshness", "runs", "decisions"),
    # operations: alliance-wide figures only as k-anonymous aggregates, no per-partner orders
    OPERATOR: ("summary", "aggregates", "freshness", "runs", "decisions"),
    AUDITOR: ("summary", "aggregates", "runs", "decisions"),
    # a partner: its own positions, needs, shortages and the orders that involve it
    PARTNER: ("mine",),
}
# roles that see the per-partner orders of a decision (others: counts by state only)
ORDER_DETAIL_ROLES = frozenset({COORDINATOR})
# roles that see a decision's per-tier figures and explanation and a failed run's detail
# (others: tiers null, generic texts naming the status)
FIGURE_ROLES = frozenset({COORDINATOR})
AGGREGATE_MEASURES = ("need", "surplus", "partners_in_shortage")


def views_for_role(role: str) -> tuple[str, ...]:
    return VIEWS_BY_ROLE.get(role, ())


def contributions(
    states: Iterable[PartitionState],
    shortages: Iterable[Mapping[str, Any]],
    alliance: Alliance | None,
) -> list[Contribution]:
    """Each partner's need, surplus and shortage flag per material and unit, with its region
    and sector: the input of the k-anonymous aggregates (never shown as such)."""
    figures: dict[tuple[str, str, str], dict[str, float]] = {}

    def entry(partner: str, material: str, unit: str) -> dict[str, float]:
        return figures.setdefault(
            (partner, material, unit), {"need": 0.0, "surplus": 0.0, "partners_in_shortage": 0.0}
        )

    for state in states:
        for (partner, _site, material), record in state.positions.items():
            entry(partner, material, record.unit)["surplus"] += record.surplus
        for (partner, _need_id), need in state.needs.items():
            entry(partner, need.material_id, need.unit)["need"] += need.quantity
    for alert in shortages:
        row = entry(str(alert["partner_id"]), str(alert["material_id"]), str(alert["unit"]))
        row["partners_in_shortage"] = 1.0
    result = []
    for (partner, material, unit), measures in sorted(figures.items()):
        known = alliance.partner(partner) if alliance is not None else None
        region = known.region if known is not None else UNKNOWN_REGION
        sector = known.sector if known is not None else UNKNOWN_REGION
        result.append(Contribution(partner, material, unit, region, sector, measures))
    return result


def aggregates_view(items: Iterable[Contribution], k: int) -> dict[str, Any]:
    """Material x region / sector figures over at least ``k`` partners, suppressed (null)
    where fewer partners stand behind a figure or where it could be computed by
    differencing (services.common.aggregates). Never a partner id or a partner's figure."""
    tables = build_tables(items, k)
    return {
        "min_partners": k,
        "measures": list(AGGREGATE_MEASURES),
        "materials": [table_view(t, AGGREGATE_MEASURES) for t in tables],
    }


def partner_view(
    partner_id: str,
    states: Iterable[PartitionState],
    shortages: Iterable[Mapping[str, Any]],
    orders: Iterable[Mapping[str, Any]],
    alliance: Alliance | None,
) -> dict[str, Any]:
    """What one partner may see: its own positions, needs and shortages, and the orders that
    involve it -- for the other party only its name and the quantity, nothing of its stock."""
    positions: list[dict[str, Any]] = []
    needs: list[dict[str, Any]] = []
    last_seen: float | None = None
    for state in states:
        for (partner, site, material), record in state.positions.items():
            if partner == partner_id:
                positions.append(
                    {
                        "site": site,
                        "material": material,
                        "unit": record.unit,
                        "on_hand": record.on_hand,
                        "safety_stock": record.safety_stock,
                        "daily_consumption": record.daily_consumption,
                        "coverage_days": record.coverage_days,
                        "as_of": record.as_of,
                    }
                )
        for (partner, need_id), need in state.needs.items():
            if partner == partner_id:
                needs.append(
                    {
                        "need_id": need_id,
                        "site": need.site_id,
                        "material": need.material_id,
                        "unit": need.unit,
                        "quantity": need.quantity,
                        "needed_by": need.needed_by,
                        "criticality": need.criticality,
                    }
                )
        seen = state.last_seen.get(partner_id)
        if seen is not None and (last_seen is None or seen > last_seen):
            last_seen = seen
    own_shortages = [
        {
            "site": a["site_id"],
            "material": a["material_id"],
            "severity": a["severity"],
            "causes": list(a.get("causes", [])),
            "detected_at": a.get("detected_at"),
        }
        for a in shortages
        if a.get("partner_id") == partner_id
    ]
    own_orders = [
        partner_order(partner_id, o, alliance)
        for o in orders
        if partner_id in o.get("recipients", [])
    ]
    known = alliance.partner(partner_id) if alliance is not None else None
    return {
        "partner": partner_id,
        "name": known.name if known is not None else partner_id,
        "last_seen": last_seen,
        "positions": sorted(positions, key=lambda p: (p["material"], p["site"])),
        "needs": sorted(needs, key=lambda n: (n["material"], n["need_id"])),
        "shortages": sorted(own_shortages, key=lambda s: (s["material"], s["site"])),
        "orders": sorted(own_orders, key=lambda o: (str(o["issued_at"]), o["order_id"])),
    }


def _name(alliance: Alliance | None, partner_id: str) -> str:
    known = alliance.partner(partner_id) if alliance is not None else None
    return known.name if known is not None else partner_id


def partner_order(
    partner_id: str, order: Mapping[str, Any], alliance: Alliance | None
) -> dict[str, Any]:
    """One order as the involved partner sees it: its own side, the other party by name."""
    payload: Mapping[str, Any] = order.get("order") or {}
    kind = order.get("kind")
    row: dict[str, Any] = {
        "order_id": order["order_id"],
        "run_id": order.get("run_id"),
        "revision": order.get("revision"),
        "kind": kind,
        "state": order.get("state", "pending"),
        "must_answer": order.get("responder") == partner_id,
        "respond_by": order.get("respond_by"),
        "issued_at": order.get("issued_at"),
    }
    if kind == "transfer":
        giving = payload.get("from_partner") == partner_id
        other = payload.get("to_partner") if giving else payload.get("from_partner")
        row |= {
            "direction": "give" if giving else "receive",
            "counterparty": _name(alliance, str(other)),
            "material": payload.get("material_id"),
            "quantity": payload.get("quantity"),
            "unit": payload.get("unit"),
            "site": payload.get("from_site") if giving else payload.get("to_site"),
            "due": payload.get("due"),
        }
    elif kind == "capacity":
        providing = payload.get("provider_partner") == partner_id
        other = payload.get("to_partner") if providing else payload.get("provider_partner")
        row |= {
            "direction": "provide" if providing else "receive",
            "counterparty": _name(alliance, str(other)),
            "capability": payload.get("capability"),
            "hours": payload.get("hours"),
            "site": payload.get("provider_site") if providing else payload.get("to_site"),
            "due": payload.get("due"),
        }
    elif kind == "purchase" and payload.get("partner_id") == partner_id:
        # a pooled purchase: only this participant's own share and saving
        row |= {
            key: payload.get(key)
            for key in (
                "material_id",
                "supplier_id",
                "quantity",
                "unit_price_pooled",
                "cost_pooled",
                "cost_alone",
                "saving",
            )
        }
    return row
