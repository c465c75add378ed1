"""``verbund partner onboard|remove PARTNER_ID``: a partner joins or leaves the alliance.

``onboard`` creates the partner's own Kafka topics (``verbund.partner.<id>.events`` and
``.orders``) on the configured broker and prints the Apache Kafka admin commands for its
SCRAM user, topic retention and ACLs (services/common/kafka_acls.py; docs/partner-onboarding.md).

``remove`` (erasure of live state) publishes a :class:`schemas.coordination.PartnerRemoved`
command to ``verbund.partner.events`` (keyed by the partner id, so the ledger applies it
after everything the partner sent, on the worker that holds its state) and to
``verbund.commands`` (the audited record of who asked). See docs/retention-and-erasure.md.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.cli.console import fail, say
from services.common.settings import ServiceSettings, load_settings

if TYPE_CHECKING:
    from schemas.coordination import PartnerRemoved

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def removal(partner_id: str, requested_by: str, reason: str) -> PartnerRemoved:
    from schemas.coordination import PartnerRemoved

    return PartnerRemoved(
        command_id=f"cmd-{secrets.token_hex(8)}",
        partner_id=partner_id,
        requested_by=requested_by,
        reason=reason,
        at=datetime.now(UTC),
    )


async def publish_removal(
    bootstrap: str, command: PartnerRemoved, options: Mapping[str, Any] | None = None
) -> None:
    from services.common.kafka import durable_producer, stop_client
    from services.common.topics import COMMANDS, PARTNER_EVENTS

    producer = durable_producer(bootstrap, options)
    await producer.start()
    try:
        value = command.model_dump_json().encode()
        key = command.partner_id.encode()
        await producer.send_and_wait(PARTNER_EVENTS.name, value, key=key)
        await producer.send_and_wait(COMMANDS.name, value, key=key)
    finally:
        await stop_client(producer)


def _principal(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9._-]", "-", name.lower()).strip("-._") or "operator"
    return cleaned if cleaned[0].isalpha() else f"u-{cleaned}"


def _cmd_remove(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    settings = load_settings(ServiceSettings)
    if not args.yes:
        fail(
            f"this drops {args.partner_id}'s positions, needs and offers from live state and "
            "views for good; repeat with --yes"
        )
        return 2
    try:
        command = removal(args.partner_id, _principal(args.by or getpass.getuser()), args.reason)
    except ValidationError as exc:
        fail(f"invalid removal: {exc.errors()[0]['msg']}")
        return 2
    from services.common.kafka import kafka_client_options

    asyncio.run(
        publish_removal(settings.require_bootstrap(), command, kafka_client_options(settings))
    )
    say(
        f"PartnerRemoved {command.command_id} published for {command.partner_id}; also remove "
        "the partner from the alliance file and revoke its tokens (`verbund access revoke`)"
    )
    return 0


def _onboard_check(partner_id: str, settings: ServiceSettings) -> str | None:
    """Why ``partner_id`` cannot be onboarded (one line), or None."""
    from schemas.alliance import load_alliance
    from services.common.topics import InvalidPartnerId, check_partner_id

    try:
        check_partner_id(partner_id)
    except InvalidPartnerId as exc:
        return str(exc)
    if settings.alliance_file is None:
        return "VERBUND_ALLIANCE_FILE is not set (only partners of the alliance are onboarded)"
    alliance = load_alliance(settings.alliance_file)
    if alliance.partner(partner_id) is None:
        return (
            f"{partner_id!r} is not a partner in the alliance file {settings.alliance_file}; "
            "add it there first"
        )
    return None


def _cmd_onboard(args: argparse.Namespace) -> int:
    from services.common.kafka import ensure_topics, kafka_client_options
    from services.common.kafka_acls import PASSWORD_VARIABLE, onboarding_commands, partner_user
    from services.common.topics import partner_topics

    settings = load_settings(ServiceSettings)
    problem = _onboard_check(args.partner_id, settings)
    if problem:
        fail(problem)
        return 2
    specs = partner_topics(args.partner_id)
    if args.no_create:
        say(f"# topics not created (--no-create): {', '.join(s.name for s in specs)}")
    else:
        bootstrap = settings.require_bootstrap()
        created = asyncio.run(
            ensure_topics(
                bootstrap,
                specs,
                replication_factor=args.replication_factor,
                options=kafka_client_options(settings),
            )
        )
        for spec in specs:
            state = "created" if spec.name in created else "exists"
            say(f"# topic {spec.name} ({spec.partitions} partition): {state} on {bootstrap}")
    say(
        f"# Kafka user {partner_user(args.partner_id)}: run as the Kafka super user, with "
        f"{PASSWORD_VARIABLE} set to the partner's new password (e.g. $(openssl rand -hex 24))"
    )
    for line in onboarding_commands(args.partner_id, args.bootstrap_server, args.command_config):
        say(line)
    say(
        "# the bridge picks the partner up when its alliance file changes (else restart it); "
        "give the partner its user, password and topics: docs/partner-onboarding.md"
    )
    return 0


def register(sub: Subparsers) -> None:
    partner = sub.add_parser("partner", help="partner lifecycle (joining, leaving the alliance)")
    actions = partner.add_subparsers(dest="partner_command", required=True, metavar="ACTION")
    onboard = actions.add_parser(
        "onboard",
        help="create a partner's own Kafka topics and print its Kafka user and ACL commands",
    )
    onboard.add_argument("partner_id", help="a partner of the alliance file")
    onboard.add_argument(
        "--no-create", action="store_true", help="only print the commands, contact no broker"
    )
    onboard.add_argument(
        "--replication-factor", type=int, default=1, help="of the created topics (default 1)"
    )
    onboard.add_argument(
        "--bootstrap-server",
        default="kafka:9095",
        help="admin listener in the printed commands (default kafka:9095, compose's BROKER)",
    )
    onboard.add_argument(
        "--command-config",
        default="admin.properties",
        help="Kafka super user's client properties file in the printed commands",
    )
    onboard.set_defaults(handler=_cmd_onboard)
    remove = actions.add_parser(
        "remove", help="remove a partner from live state and views (PartnerRemoved)"
    )
    remove.add_argument("partner_id")
    remove.add_argument("--reason", default="", help="recorded with the command")
    remove.add_argument("--by", help="who asks (default: the current user)")
    remove.add_argument("--yes", action="store_true", help="confirm the removal")
    remove.set_defaults(handler=_cmd_remove)
