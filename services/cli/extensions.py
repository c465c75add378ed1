"""Subcommands that live next to the code they drive: gateway, schemas, access, protocols."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from services.cli.console import fail, say
from services.common.logging import configure_logging
from services.common.settings import ServiceSettings, load_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _cmd_gateway(args: argparse.Namespace) -> int:
    from services.common.runner import run_until_signalled
    from services.gateway import GatewaySettings, run_gateway

    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level, settings.log_json)
    return run_until_signalled(run_gateway(settings))


def _cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.generate import SCHEMA_DIR, check_all, write_all

    target = Path(args.dir) if args.dir else SCHEMA_DIR
    if args.action == "check":
        drifted = check_all(target)
        for name in drifted:
            fail(f"{name} differs from the models; run `verbund schemas generate`")
        if not drifted:
            say(f"schemas in {target} match the models")
        return 1 if drifted else 0
    for path in write_all(target):
        say(f"wrote {path}")
    return 0


def _tokens_file(args: argparse.Namespace) -> Path:
    if args.tokens_file:
        return Path(args.tokens_file)
    settings = load_settings(ServiceSettings)
    return settings.data_dir / "gateway-tokens.yaml"


def _cmd_access(args: argparse.Namespace) -> int:
    from services.gateway.tokens import issue_token, revoke_tokens

    path = _tokens_file(args)
    if args.action == "issue":
        token = issue_token(args.partner, path)
        say(f"token for {args.partner} (shown once; only its hash is stored in {path}):")
        say(token)
        return 0
    removed = revoke_tokens(args.partner, path)
    say(f"revoked {removed} token(s) of {args.partner}")
    return 0 if removed else 1


def register(sub: Subparsers) -> None:
    gateway = sub.add_parser("gateway", help="run the HTTP gateway for partners without Kafka")
    gateway.set_defaults(handler=_cmd_gateway)

    schemas = sub.add_parser("schemas", help="generate or check the JSON Schema/AsyncAPI files")
    schemas.add_argument("action", choices=["generate", "check"])
    schemas.add_argument("--dir", help="target folder (default: the schemas package)")
    schemas.set_defaults(handler=_cmd_schemas)

    access = sub.add_parser("access", help="issue or revoke partner gateway tokens")
    access.add_argument("action", choices=["issue", "revoke"])
    access.add_argument("partner", help="partner id")
    access.add_argument("--tokens-file", help="default: $VERBUND_DATA_DIR/gateway-tokens.yaml")
    access.set_defaults(handler=_cmd_access)

    from protocols.cli import register as register_protocols
    from services.coordinator import cli as coordinator_cli

    register_protocols(sub, protocol_extra=coordinator_cli.register_protocol_run)
    coordinator_cli.register(sub)

    from services.audit.cli import register as register_audit

    register_audit(sub)

    from services.console.cli import register as register_console

    register_console(sub)
