"""Topic names and layout: declared once, used by every service, the CLI and compose."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PARTITIONS = 8


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    key: str


PARTNER_EVENTS = TopicSpec(
    "verbund.partner.events",
    DEFAULT_PARTITIONS,
    "Partner events (StockReported, CapacityOffered, NeedReported, OrderAcknowledged).",
    "partner id",
)
DEAD_LETTERS = TopicSpec(
    "verbund.deadletter",
    1,
    "Messages that could not be processed, with original bytes, reason and source offset.",
    "source topic",
)
ALERTS = TopicSpec(
    "verbund.alerts",
    DEFAULT_PARTITIONS,
    "ShortageDetected / ShortageResolved (keyed by material) and MaterialBalancesReported "
    "(keyed by balances-<partition>) from the ledger.",
    "material id (balance reports: balances-<partition>)",
)
LEDGER_CHANGELOG = TopicSpec(
    "verbund.ledger.changelog",
    DEFAULT_PARTITIONS,
    "Ledger state changes, one record per processed batch and partition; replayed on restart.",
    "source partition",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (PARTNER_EVENTS, DEAD_LETTERS, ALERTS, LEDGER_CHANGELOG)
