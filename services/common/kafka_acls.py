"""Kafka users and ACLs of the per-partner topics: the one table.

``verbund partner onboard`` prints its commands from here, tests/deploy/test_compose.py checks
that the ``kafka-acl-setup`` script of docker-compose.yml grants exactly this to the example
partner and the bridge, and tests/deploy/test_docs.py checks the commands shown in
docs/partner-onboarding.md. Change it here and nowhere else.

A partner's Kafka user (``partner-<id>``) may write its own events topic, read its own orders
topic and commit offsets of consumer groups named ``partner.<id>.*``: nothing on any other
topic. The partner bridge (user ``bridge``) reads each partner's events topic and writes
each partner's orders topic, and may create both (it creates missing ones at start). Read
and Write imply Describe (metadata) in Kafka, so Describe is not listed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from services.common.topics import (
    check_partner_id,
    partner_events_topic,
    partner_orders_topic,
)

BRIDGE_USER = "bridge"
BRIDGE_GROUP = "verbund-bridge"
PARTNER_USER_PREFIX = "partner-"
KAFKA_BIN = "/opt/kafka/bin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
DAY_MS = 24 * 3600 * 1000
# Retention of a partner's own topics: as their shared counterparts (docs/deployment.md):
# events 7 days (input, the ledger's state is in its changelog), orders 90 days (a partner
# system offline for weeks still finds its orders).
PARTNER_EVENTS_RETENTION_MS = 7 * DAY_MS
PARTNER_ORDERS_RETENTION_MS = 90 * DAY_MS
PASSWORD_VARIABLE = "PARTNER_PASSWORD"


@dataclass(frozen=True, order=True)
class Acl:
    """One ``kafka-acls.sh --add --allow-principal User:<user>`` grant."""

    user: str
    operation: Literal["Read", "Write", "Create", "Describe"]
    resource: Literal["topic", "group"]
    name: str
    pattern: Literal["literal", "prefixed"] = "literal"

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def as_tuple(self) -> tuple[str, str, str, str]:
        """``(operation, resource, name, pattern)``: how the compose test compares grants."""
        return (self.operation, self.resource, self.name, self.pattern)


def partner_user(partner_id: str) -> str:
    """The partner's Kafka (SCRAM) user name."""
    return PARTNER_USER_PREFIX + check_partner_id(partner_id)


def partner_group_prefix(partner_id: str) -> str:
    """Consumer groups the partner may use start with this (the dot ends the id)."""
    return f"partner.{check_partner_id(partner_id)}."


def partner_acls(partner_id: str) -> tuple[Acl, ...]:
    """Everything the partner's own user may do."""
    user = partner_user(partner_id)
    return (
        Acl(user, "Write", "topic", partner_events_topic(partner_id)),
        Acl(user, "Read", "topic", partner_orders_topic(partner_id)),
        Acl(user, "Read", "group", partner_group_prefix(partner_id), "prefixed"),
    )


def bridge_acls(partner_id: str) -> tuple[Acl, ...]:
    """What the bridge needs for this partner (its other ACLs do not depend on partners)."""
    events, orders = partner_events_topic(partner_id), partner_orders_topic(partner_id)
    return (
        Acl(BRIDGE_USER, "Read", "topic", events),
        Acl(BRIDGE_USER, "Write", "topic", orders),
        Acl(BRIDGE_USER, "Create", "topic", events),
        Acl(BRIDGE_USER, "Create", "topic", orders),
    )


def onboarding_acls(partner_id: str) -> tuple[Acl, ...]:
    """Every ACL onboarding one partner adds: the partner's and the bridge's for it."""
    return partner_acls(partner_id) + bridge_acls(partner_id)


def partner_topic_retention(partner_id: str) -> dict[str, int]:
    """``{topic: retention.ms}`` of the partner's own topics."""
    return {
        partner_events_topic(partner_id): PARTNER_EVENTS_RETENTION_MS,
        partner_orders_topic(partner_id): PARTNER_ORDERS_RETENTION_MS,
    }


def onboarding_commands(
    partner_id: str,
    bootstrap: str = "kafka:9095",
    command_config: str = "admin.properties",
) -> list[str]:
    """The Apache Kafka admin commands for one partner, one per line, to run as the Kafka
    super user (``command_config``: its client properties; in the compose stack the BROKER
    listener ``kafka:9095``). The partner's password is taken from ``$PARTNER_PASSWORD``."""
    admin = f"--bootstrap-server {shlex.quote(bootstrap)} --command-config " + shlex.quote(
        command_config
    )
    user = partner_user(partner_id)
    scram = f"{SCRAM_MECHANISM}=[iterations={SCRAM_ITERATIONS},password=${PASSWORD_VARIABLE}]"
    lines = [
        f"{KAFKA_BIN}/kafka-configs.sh {admin} --alter --entity-type users "
        f'--entity-name {user} --add-config "{scram}"'
    ]
    for topic, retention in partner_topic_retention(partner_id).items():
        lines.append(
            f"{KAFKA_BIN}/kafka-configs.sh {admin} --alter --entity-type topics "
            f"--entity-name {topic} --add-config retention.ms={retention}"
        )
    for acl in onboarding_acls(partner_id):
        lines.append(
            f"{KAFKA_BIN}/kafka-acls.sh {admin} --add --allow-principal {acl.principal} "
            f"--operation {acl.operation} --{acl.resource} {acl.name} "
            f"--resource-pattern-type {acl.pattern}"
        )
    return lines
