"""``verbund partner remove PARTNER_ID``: a partner leaves the alliance (erasure of live state).

Publishes a :class:`schemas.coordination.PartnerRemoved` command to
``verbund.partner.events`` (keyed by the partner id, so the ledger applies it after
everything the partner sent, on the worker that holds its state) and to
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


def register(sub: Subparsers) -> None:
    partner = sub.add_parser("partner", help="partner lifecycle (leaving the alliance)")
    actions = partner.add_subparsers(dest="partner_command", required=True, metavar="ACTION")
    remove = actions.add_parser(
        "remove", help="remove a partner from live state and views (PartnerRemoved)"
    )
    remove.add_argument("partner_id")
    remove.add_argument("--reason", default="", help="recorded with the command")
    remove.add_argument("--by", help="who asks (default: the current user)")
    remove.add_argument("--yes", action="store_true", help="confirm the removal")
    remove.set_defaults(handler=_cmd_remove)
