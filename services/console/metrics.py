"""Prometheus metrics of the console (served on its own ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECORDS = Counter(
    "verbund_console_records", "Kafka records the console has read, by topic.", ["topic"]
)
BAD_RECORDS = Counter(
    "verbund_console_bad_records", "Records the console could not fold, by topic.", ["topic"]
)
STREAM_CLIENTS = Gauge(
    "verbund_console_stream_clients", "Pages connected to the live event stream."
)
FORWARDED = Counter(
    "verbund_console_forwarded_commands",
    "Approvals and rejections forwarded to the coordinator, by action and HTTP status.",
    ["action", "status"],
)
