"""The coordinator's Prometheus metrics (labels: protocol, status, state, tier)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.coordinator.core import Coordinator

RUNS = Counter(
    "verbund_protocol_runs",
    "Protocol run state changes, by protocol and state.",
    ["protocol", "status"],
)
SOLVE_SECONDS = Histogram(
    "verbund_solve_seconds",
    "Snapshot + model build + solve + extraction time of a run.",
    ["protocol"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TRIGGER_TO_DECISION = Histogram(
    "verbund_trigger_to_decision_seconds",
    "From a trigger (or the last approval, or a decline) to the published decision.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60),
)
COMMANDS_REFUSED = Counter(
    "verbund_commands_refused", "Coordinator commands refused, by reason.", ["reason"]
)
ANSWERS_REFUSED = Counter(
    "verbund_answers_refused",
    "Partner answers to orders that cannot take effect (dead-lettered), by reason.",
    ["reason"],
)


class CoordinatorCollector(Collector):
    """Orders by state, unmet quantity by tier, overdue protocol reviews: read at scrape."""

    def __init__(self, core: Coordinator) -> None:
        self.core = core

    def collect(self) -> Iterator[GaugeMetricFamily]:
        orders = GaugeMetricFamily(
            "verbund_orders",
            "Orders of the current revision of every run, by state.",
            labels=["state"],
        )
        counts: dict[str, int] = {}
        unmet: dict[tuple[str, str], float] = {}
        for run in list(self.core.runs.values()):
            for order in run.current_orders():
                counts[order.state.value] = counts.get(order.state.value, 0) + 1
            if run.decision is not None:
                for tier, quantity in run.decision.unmet_by_tier.items():
                    unmet[(run.protocol.id, str(tier))] = quantity
        for state, count in sorted(counts.items()):
            orders.add_metric([state], count)
        yield orders
        gauge = GaugeMetricFamily(
            "verbund_unmet_quantity",
            "Unmet quantity by tier in the latest decision of a protocol.",
            labels=["protocol", "tier"],
        )
        for (protocol_id, tier_label), quantity in sorted(unmet.items()):
            gauge.add_metric([protocol_id, tier_label], quantity)
        yield gauge
        overdue = GaugeMetricFamily(
            "verbund_protocol_review_overdue",
            "1 when a protocol's review is overdue.",
            labels=["protocol"],
        )
        today = datetime.now(UTC).date()
        for definition in self.core.protocols.values():
            flag = 1.0 if definition.review_overdue(today) else 0.0
            overdue.add_metric([definition.id], flag)
        yield overdue


def register(core: Coordinator) -> None:
    REGISTRY.register(CoordinatorCollector(core))
