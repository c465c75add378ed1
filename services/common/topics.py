"""Topic names and layout: declared once, used by every service, the CLI and compose.

Two kinds of topics:

* the internal topics in :data:`ALL_TOPICS`, written only by Verbund services. The shared
  keyed ``verbund.partner.events`` and ``verbund.partner.orders`` are among them: Kafka ACLs
  work per topic, not per key, so no partner may touch them;
* per-partner topics, one pair per partner (:func:`partner_topics`):
  ``verbund.partner.<id>.events`` (the partner writes, the bridge reads and forwards to
  ``verbund.partner.events``) and ``verbund.partner.<id>.orders`` (the bridge copies the
  partner's orders there from ``verbund.partner.orders``, the partner reads). ACLs give a
  partner exactly its own pair (services/common/kafka_acls.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.common import PARTNER_ID_PATTERN

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
    "Partner events (StockReported, CapacityOffered, NeedReported, OrderAcknowledged, ...), "
    "internal: written by the partner bridge (from each partner's own events topic) and the "
    "HTTP gateway, never by partners directly.",
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
    "Orders to partners (OrderIssued, OrderUpdated), internal: the partner bridge copies each "
    "record to the recipient's own orders topic, which is what partners read.",
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
QUOTES = TopicSpec(
    "verbund.purchasing.quotes",
    1,
    "Supplier quotes (price tiers) of joint purchasing pools, entered by coordinators "
    "(SupplierQuoteSet); read only by the coordinator and the audit service.",
    "supplier id/material id",
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
    QUOTES,
)


# -- per-partner topics ------------------------------------------------------------------------

PARTNER_TOPIC_PARTITIONS = 1  # one partner's volume; one partition keeps its records in order
_PARTNER_ID_RE = re.compile(PARTNER_ID_PATTERN)
_PARTNER_TOPIC_RE = re.compile(r"^verbund\.partner\.([a-z][a-z0-9-]{1,39})\.(events|orders)$")


class InvalidPartnerId(ValueError):
    """Not a partner id (lower-case letter, then 1-39 of a-z, 0-9, '-')."""


def check_partner_id(partner_id: str) -> str:
    """``partner_id`` if it is a valid partner id, else :class:`InvalidPartnerId`."""
    if not _PARTNER_ID_RE.fullmatch(partner_id):
        raise InvalidPartnerId(
            f"{partner_id!r} is not a valid partner id (a lower-case letter, then 1-39 "
            "lower-case letters, digits or '-')"
        )
    return partner_id


def partner_events_topic(partner_id: str) -> str:
    """``verbund.partner.<id>.events``: the one topic the partner writes its events to."""
    return f"verbund.partner.{check_partner_id(partner_id)}.events"


def partner_orders_topic(partner_id: str) -> str:
    """``verbund.partner.<id>.orders``: the one topic the partner reads its orders from."""
    return f"verbund.partner.{check_partner_id(partner_id)}.orders"


def partner_topics(partner_id: str) -> tuple[TopicSpec, TopicSpec]:
    """The partner's own (events, orders) topics."""
    return (
        TopicSpec(
            partner_events_topic(partner_id),
            PARTNER_TOPIC_PARTITIONS,
            f"Events of partner {partner_id}, written only by it; the bridge checks and "
            f"forwards them to {PARTNER_EVENTS.name}.",
            "any (the bridge keys the forwarded record by the topic's owner)",
        ),
        TopicSpec(
            partner_orders_topic(partner_id),
            PARTNER_TOPIC_PARTITIONS,
            f"Orders for partner {partner_id}, copied by the bridge from {PARTNER_ORDERS.name}.",
            "partner id",
        ),
    )


def owner_of_partner_topic(topic: str) -> tuple[str, str] | None:
    """``(partner id, "events" | "orders")`` of a per-partner topic name, else None."""
    match = _PARTNER_TOPIC_RE.fullmatch(topic)
    return (match.group(1), match.group(2)) if match else None


# Templates of the per-partner topics, for documentation (AsyncAPI): ``{partner_id}``.
PARTNER_OWN_EVENTS = TopicSpec(
    "verbund.partner.{partner_id}.events",
    PARTNER_TOPIC_PARTITIONS,
    "A partner's own events topic: only that partner may write it (Kafka ACL). The partner "
    f"bridge forwards each record whose partner_id is the topic's owner and whose type is a "
    f"partner event to {PARTNER_EVENTS.name}; anything else goes to {DEAD_LETTERS.name}.",
    "partner id",
)
PARTNER_OWN_ORDERS = TopicSpec(
    "verbund.partner.{partner_id}.orders",
    PARTNER_TOPIC_PARTITIONS,
    "A partner's own orders topic: only that partner may read it (Kafka ACL). The partner "
    f"bridge copies the partner's records from {PARTNER_ORDERS.name} here.",
    "partner id",
)
PARTNER_TOPIC_TEMPLATES: tuple[TopicSpec, ...] = (PARTNER_OWN_EVENTS, PARTNER_OWN_ORDERS)
