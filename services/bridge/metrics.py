"""The partner bridge's Prometheus metrics (no partner ids in labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

# direction: "inbound" (partner events topics -> verbund.partner.events) or "outbound"
# (verbund.partner.orders -> partner orders topics)
FORWARDED = Counter(
    "verbund_bridge_forwarded",
    "Records forwarded and acknowledged by the broker, by direction.",
    ["direction"],
)
DEAD_LETTERED = Counter(
    "verbund_bridge_dead_lettered",
    "Records sent to verbund.deadletter instead of being forwarded, by direction and reason "
    "(services/bridge/routing.py).",
    ["direction", "reason"],
)
DEAD_LETTERS_LOST = Counter(
    "verbund_bridge_dead_letters_lost",
    "Rejected records whose dead letter the broker refused too (logged with their source "
    "offset, then skipped).",
)
PARTNERS = Gauge(
    "verbund_bridge_partners", "Partners whose own topics the bridge consumes and writes."
)
COMMIT_FAILURES = Counter(
    "verbund_bridge_commit_failures",
    "Offset commits that failed (the records are forwarded again after a restart).",
)
