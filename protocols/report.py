"""Readable drill reports, single and side by side (pure: returns text)."""

from __future__ import annotations

from collections import defaultdict

from protocols.run import RunResult
from protocols.transport import TIER_WORDS


def _fmt(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) >= 1e-6 else "0"


def fulfilment_by_tier(result: RunResult) -> dict[int, tuple[float, float]]:
    d = result.decision
    return {
        t: (d.requested_by_tier.get(t, 0.0), d.requested_by_tier.get(t, 0.0) - u)
        for t, u in sorted(d.unmet_by_tier.items())
    }


def _more(total: int, shown: int) -> list[str]:
    """The line saying how many rows of a section were left out (none when all are shown)."""
    if total <= shown:
        return []
    return [f"  ... and {total - shown} more (all in the JSON decision file, --output)"]


def render(result: RunResult, label: str = "", max_orders: int = 40) -> str:
    d, r, t = result.decision, result.record, result.timings
    lines = [
        f"== {label or d.protocol_id} (v{d.protocol_version}, {d.kind}) ==",
        f"status: {d.status.value}"
        + ("" if d.proven_optimal else "  (NOT proven optimal)" if d.status.has_solution else ""),
        f"solver: {r.solver} [{r.solver_version}]  time: build {t.build_s:.3f}s, "
        f"solve {t.solve_s:.3f}s, extract {t.extract_s:.3f}s, total {t.total_s:.3f}s",
    ]
    if d.explanation:
        lines.append(f"explanation: {d.explanation}")
    lines.append("fulfilment by tier:")
    for tier, (req, got) in fulfilment_by_tier(result).items():
        share = got / req if req > 0 else 1.0
        lines.append(
            f"  {TIER_WORDS.get(tier, tier)}: {_fmt(got)} of {_fmt(req)} ({share:.1%}), "
            f"unmet {_fmt(req - got)}"
        )
    by_partner: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for f in d.fulfilment:
        by_partner[f.partner_id][0] += f.requested
        by_partner[f.partner_id][1] += f.fulfilled
    lines.append("fulfilment by partner:")
    for partner, (req, got) in sorted(by_partner.items())[:max_orders]:
        lines.append(f"  {partner}: {_fmt(got)} of {_fmt(req)} ({got / req if req else 1:.1%})")
    lines += _more(len(by_partner), max_orders)
    if d.transfers:
        lines.append(f"transfers ({len(d.transfers)}):")
        for o in d.transfers[:max_orders]:
            lines.append(
                f"  {o.material_id}: {o.from_partner}/{o.from_site} -> {o.to_partner}/{o.to_site}"
                f"  {_fmt(o.quantity)} {o.unit}  due {o.due}  {o.distance_km:.0f} km"
            )
        lines += _more(len(d.transfers), max_orders)
    if d.capacity_assignments:
        lines.append(f"capacity assignments ({len(d.capacity_assignments)}):")
        for a in d.capacity_assignments[:max_orders]:
            lines.append(
                f"  {a.capability}: {a.provider_partner} ({a.offer_id}) -> {a.to_partner}"
                f"  {_fmt(a.hours)} h  due {a.due}"
            )
        lines += _more(len(d.capacity_assignments), max_orders)
    if d.purchase_shares:
        lines.append(
            f"purchase shares ({len(d.purchase_shares)}; the pool's cost is split in proportion"
            " to what each would pay alone):"
        )
        for s in d.purchase_shares[:max_orders]:
            lines.append(
                f"  {s.material_id} from {s.supplier_id} @ {s.unit_price_pooled:g}: {s.partner_id}"
                f" {_fmt(s.quantity)} units, pays {_fmt(s.cost_pooled)}"
                f" (alone {_fmt(s.cost_alone)}, saves {_fmt(s.saving)})"
            )
        lines += _more(len(d.purchase_shares), max_orders)
        lines.append(f"total saving: {_fmt(d.total_saving)}")
    lines.append(f"cost: {_fmt(d.total_cost)}")
    if result.violations:
        lines.append("INVARIANT VIOLATIONS: " + "; ".join(result.violations[:10]))
    return "\n".join(lines) + "\n"


def compare(results: list[tuple[str, RunResult]]) -> str:
    """Side-by-side table of the key figures of several runs on the same scenario."""
    labels = [label for label, _ in results]
    width = max(14, *(len(lb) for lb in labels))
    rows: list[tuple[str, list[str]]] = [
        ("status", [r.decision.status.value for _, r in results]),
        ("orders", [str(len(r.decision.orders())) for _, r in results]),
    ]
    tiers = sorted({t for _, r in results for t in r.decision.unmet_by_tier})
    for tier in tiers:
        rows.append(
            (
                f"unmet tier {tier}",
                [_fmt(r.decision.unmet_by_tier.get(tier, 0.0)) for _, r in results],
            )
        )
    rows += [
        ("cost", [_fmt(r.decision.total_cost) for _, r in results]),
        ("saving", [_fmt(r.decision.total_saving) for _, r in results]),
        ("time s", [f"{r.timings.total_s:.3f}" for _, r in results]),
    ]
    lines = ["== comparison ==", f"{'':16}" + "".join(f"{lb:>{width + 2}}" for lb in labels)]
    for name, values in rows:
        lines.append(f"{name:16}" + "".join(f"{v:>{width + 2}}" for v in values))
    return "\n".join(lines) + "\n"
