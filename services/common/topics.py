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

COMMANDS = TopicSpec(
    "verbund.commands",
    1,
    "Coordinator commands (TriggerProtocol, ApproveRun, RejectRun) as the record of who asked "
    "for what, and AccessRefused (keyed by principal) whenever access control refuses a request.",
    "run id (AccessRefused: principal)",
)
RUNS = TopicSpec(
    "verbund.runs",
    1,
    "Protocol run state changes (RunUpdated).",
    "run id",
)
DECISIONS = TopicSpec(
    "verbund.decisions",
    DEFAULT_PARTITIONS,
    "Decision summaries of protocol runs (DecisionPublished).",
    "run id",
)
PARTNER_ORDERS = TopicSpec(
    "verbund.partner.orders",
    DEFAULT_PARTITIONS,
    "Orders to partners (OrderIssued, OrderUpdated); each partner reads only its own key.",
    "partner id",
)
PROTOCOLS = TopicSpec(
    "verbund.protocols",
    1,
    "Protocol versions loaded by the coordinator (id, version, hash, owner, review date).",
    "protocol id",
)
AUDIT = TopicSpec(
    "verbund.audit",
    1,
    "The hash-chained audit log, one record per entry in sequence order (the file written "
    "by the audit service is authoritative).",
    "audit sequence number",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    PARTNER_EVENTS,
    DEAD_LETTERS,
    ALERTS,
    LEDGER_CHANGELOG,
    COMMANDS,
    RUNS,
    DECISIONS,
    PARTNER_ORDERS,
    PROTOCOLS,
    AUDIT,
)
