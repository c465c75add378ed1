"""Per-partner topic names (services/common/topics.py) and the partner ACL table
(services/common/kafka_acls.py)."""

from __future__ import annotations

import shlex

import pytest

from services.common.kafka_acls import (
    BRIDGE_USER,
    Acl,
    bridge_acls,
    onboarding_acls,
    onboarding_commands,
    partner_acls,
    partner_user,
)
from services.common.topics import (
    ALL_TOPICS,
    PARTNER_TOPIC_PARTITIONS,
    InvalidPartnerId,
    owner_of_partner_topic,
    partner_events_topic,
    partner_orders_topic,
    partner_topics,
)


@pytest.mark.parametrize("partner", ["ab", "klinik-sued", "events", "orders", "a" * 40])
def test_partner_topic_names_round_trip(partner: str) -> None:
    events, orders = partner_topics(partner)
    assert events.name == partner_events_topic(partner) == f"verbund.partner.{partner}.events"
    assert orders.name == partner_orders_topic(partner) == f"verbund.partner.{partner}.orders"
    assert events.partitions == orders.partitions == PARTNER_TOPIC_PARTITIONS
    assert owner_of_partner_topic(events.name) == (partner, "events")
    assert owner_of_partner_topic(orders.name) == (partner, "orders")
    assert {events.name, orders.name}.isdisjoint({t.name for t in ALL_TOPICS})


@pytest.mark.parametrize(
    "bad",
    ["", "a", "A-partner", "1abc", "a.b", "a_b", "a b", "a" * 41, "../x", "ab\n", "ab\n.events"],
)
def test_invalid_partner_ids_make_no_topic_name(bad: str) -> None:
    with pytest.raises(InvalidPartnerId, match="not a valid partner id"):
        partner_events_topic(bad)
    with pytest.raises(InvalidPartnerId):
        partner_orders_topic(bad)
    with pytest.raises(InvalidPartnerId):
        partner_user(bad)


def test_shared_and_foreign_topics_have_no_owner() -> None:
    for topic in (
        *(t.name for t in ALL_TOPICS),
        "verbund.partner.a.events",  # too short an id
        "verbund.partner.x.y.events",
        "verbund.partner.abc.alerts",
        "other.partner.abc.events",
        "verbund.partner.abc.events\n",
    ):
        assert owner_of_partner_topic(topic) is None, topic


def test_a_partner_may_touch_only_its_own_topics() -> None:
    for partner in ("klinik-sued", "werk-a"):
        acls = partner_acls(partner)
        assert {a.user for a in acls} == {f"partner-{partner}"}
        topics = {(a.operation, a.name) for a in acls if a.resource == "topic"}
        assert topics == {
            ("Write", f"verbund.partner.{partner}.events"),
            ("Read", f"verbund.partner.{partner}.orders"),
        }
        assert all(a.pattern == "literal" for a in acls if a.resource == "topic")
        [group] = [a for a in acls if a.resource == "group"]
        assert (group.name, group.pattern) == (f"partner.{partner}.", "prefixed")


def test_the_bridge_reads_events_and_writes_orders_of_each_partner() -> None:
    acls = bridge_acls("werk-a")
    assert {a.user for a in acls} == {BRIDGE_USER}
    assert {(a.operation, a.name) for a in acls} == {
        ("Read", "verbund.partner.werk-a.events"),
        ("Write", "verbund.partner.werk-a.orders"),
        ("Create", "verbund.partner.werk-a.events"),
        ("Create", "verbund.partner.werk-a.orders"),
    }
    assert set(onboarding_acls("werk-a")) == set(acls) | set(partner_acls("werk-a"))


def test_onboarding_commands_are_one_line_each_and_cover_the_table() -> None:
    lines = onboarding_commands("klinik-sued", "kafka:9095", "/tmp/admin.properties")
    assert all("\n" not in line for line in lines)
    assert all(shlex.split(line)[0].startswith("/opt/kafka/bin/kafka-") for line in lines)
    granted = set()
    for line in lines:
        argv = shlex.split(line)
        assert argv[1:5] == [
            "--bootstrap-server",
            "kafka:9095",
            "--command-config",
            "/tmp/admin.properties",
        ]
        if argv[0].endswith("kafka-acls.sh"):
            user = argv[argv.index("--allow-principal") + 1].removeprefix("User:")
            kind = "topic" if "--topic" in argv else "group"
            name = argv[argv.index(f"--{kind}") + 1]
            pattern = argv[argv.index("--resource-pattern-type") + 1]
            operation = argv[argv.index("--operation") + 1]
            granted.add(Acl(user, operation, kind, name, pattern))  # type: ignore[arg-type]
    assert granted == set(onboarding_acls("klinik-sued"))
    [user_line] = [line for line in lines if "--entity-type users" in line]
    assert "--entity-name partner-klinik-sued" in user_line
    assert "SCRAM-SHA-512=[iterations=8192,password=$PARTNER_PASSWORD]" in user_line
    retention = [line for line in lines if "--entity-type topics" in line]
    assert len(retention) == 2 and all("retention.ms=" in line for line in retention)
