"""The ledger's Prometheus metrics. Labels are types, reasons, severities, materials and
partner ids for data age only: never a partner's stock figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.metrics import LATENCY_BUCKETS
from services.ledger.processor import LedgerProcessor, Outcome

EVENTS_INGESTED = Counter(
    "verbund_events_ingested", "Valid partner events processed, by type.", ["type"]
)
POSITIONS_INGESTED = Counter("verbund_positions_ingested", "Stock positions processed.")
EXPIRED_POSITIONS = Counter(
    "verbund_positions_expired",
    "Positions dropped by the retention sweep (VERBUND_RETENTION_POSITIONS_DAYS).",
)
EVENTS_REJECTED = Counter(
    "verbund_events_rejected",
    "Partner messages sent to the dead-letter topic, by reason.",
    ["reason"],
)
EVENTS_IGNORED = Counter(
    "verbund_events_ignored", "Events or positions ignored (duplicate, out_of_order).", ["reason"]
)
SHORTAGE_TRANSITIONS = Counter(
    "verbund_shortage_transitions",
    "Shortage transitions (started, worsened, eased, resolved).",
    ["transition"],
)
PROCESSING_LATENCY = Histogram(
    "verbund_ledger_processing_latency_seconds",
    "Time from a record's broker timestamp to the end of its batch's processing.",
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "verbund_ledger_batch_seconds",
    "Wall time to process and persist one batch.",
    buckets=LATENCY_BUCKETS,
)
RECOVERY_SECONDS = Histogram(
    "verbund_ledger_recovery_seconds",
    "Time to rebuild one partition from its changelog.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def record_outcome(out: Outcome) -> None:
    for kind, count in out.ingested.items():
        EVENTS_INGESTED.labels(kind).inc(count)
    if out.positions:
        POSITIONS_INGESTED.inc(out.positions)
    for reason, count in out.rejected.items():
        EVENTS_REJECTED.labels(reason).inc(count)
    for reason, count in out.ignored.items():
        EVENTS_IGNORED.labels(reason).inc(count)
    for transition, count in out.transitions.items():
        SHORTAGE_TRANSITIONS.labels(transition).inc(count)


class LedgerStateCollector(Collector):
    """Gauges computed at scrape time from the state this worker holds."""

    def __init__(self, processor: LedgerProcessor, clock: Callable[[], float] = time.time) -> None:
        self.processor = processor
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = list(self.processor.states.values())
        shortages = GaugeMetricFamily(
            "verbund_open_shortages",
            "Open shortages by severity and material.",
            labels=["severity", "material"],
        )
        counts: dict[tuple[str, str], int] = {}
        for state in states:
            for key, severity in list(state.shortages.open.items()):
                label = (severity.value, key[2])
                counts[label] = counts.get(label, 0) + 1
        for (level, material), count in sorted(counts.items()):
            shortages.add_metric([level, material], count)
        yield shortages

        age = GaugeMetricFamily(
            "verbund_partner_data_age_seconds",
            "Seconds since the newest event time applied for each partner.",
            labels=["partner"],
        )
        now = self.clock()
        latest: dict[str, float] = {}
        for state in states:
            for partner, as_of in list(state.last_seen.items()):
                latest[partner] = max(as_of, latest.get(partner, as_of))
        for partner, as_of in sorted(latest.items()):
            age.add_metric([partner], max(0.0, now - as_of))
        yield age

        held = GaugeMetricFamily(
            "verbund_ledger_positions", "Positions held by this worker.", labels=["partition"]
        )
        for state in states:
            held.add_metric([str(state.partition)], len(state.positions))
        yield held


def register_state_collector(processor: LedgerProcessor) -> LedgerStateCollector:
    collector = LedgerStateCollector(processor)
    REGISTRY.register(collector)
    return collector
