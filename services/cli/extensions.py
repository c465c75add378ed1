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


def _credentials_file(args: argparse.Namespace) -> Path:
    if args.credentials_file:
        return Path(args.credentials_file)
    return load_settings(ServiceSettings).credentials_path()


def _cmd_access(args: argparse.Namespace) -> int:
    """``verbund access issue|list|rotate|revoke``: see docs/access.md."""
    from services.common.identity import CredentialsError

    try:
        if getattr(args, "tokens_file", None):
            return _legacy_access(args)
        return _ACCESS_ACTIONS[args.action](args, _credentials_file(args))
    except CredentialsError as exc:
        fail(str(exc))
        return 2


def _access_issue(args: argparse.Namespace, path: Path) -> int:
    from services.common.identity import issue

    token, credential = issue(path, args.principal, args.role or "partner", args.expires_days)
    until = f", expires {credential.expires:%Y-%m-%d %H:%M} UTC" if credential.expires else ""
    say(
        f"token {credential.token_id} for {credential.principal} (role {credential.role.value}"
        f"{until}); shown once, only its hash is stored in {path}:"
    )
    say(token)
    return 0


def _access_list(args: argparse.Namespace, path: Path) -> int:
    from services.cli.console import table
    from services.common.identity import list_credentials, utcnow

    now = utcnow()
    rows = [c.listing(now) for c in list_credentials(path, args.principal)]
    if args.json:
        import json

        say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say(f"no tokens in {path}")
        return 0
    columns = ("token_id", "principal", "role", "created", "expires", "expired")
    cells = [[r[c] for c in columns[:-1]] + ["yes" if r["expired"] else ""] for r in rows]
    say(table(columns, cells))
    return 0


def _access_rotate(args: argparse.Namespace, path: Path) -> int:
    from services.common.identity import rotate

    token, new, old = rotate(path, args.token_id, args.grace_hours)
    if old is None:
        say(f"token {args.token_id} revoked")
    else:
        say(f"token {old.token_id} stays valid until {old.expires:%Y-%m-%d %H:%M} UTC")
    say(f"new token {new.token_id} for {new.principal} (role {new.role.value}); shown once:")
    say(token)
    return 0


def _access_revoke(args: argparse.Namespace, path: Path) -> int:
    from services.common.identity import CredentialsError, revoke

    if (args.token_id is None) == (args.principal is None):
        raise CredentialsError("name either a TOKEN_ID or --principal P")
    removed = revoke(path, args.token_id, args.principal)
    for credential in removed:
        say(f"revoked token {credential.token_id} of {credential.principal}")
    if not removed:
        say(f"{args.principal} has no tokens in {path}")
    return 0 if removed else 1


_ACCESS_ACTIONS = {
    "issue": _access_issue,
    "list": _access_list,
    "rotate": _access_rotate,
    "revoke": _access_revoke,
}


def _legacy_access(args: argparse.Namespace) -> int:
    """``--tokens-file``: a legacy per-service file {id: [hash, ...]} (the role is the file's:
    partner for the gateway's, coordinator for the coordinator's)."""
    from services.common.tokens import issue_token, revoke_tokens

    path = Path(args.tokens_file)
    if args.action == "issue":
        token = issue_token(args.principal, path)
        say(f"token for {args.principal} (shown once; only its hash is stored in {path}):")
        say(token)
        return 0
    if args.action != "revoke":
        fail(f"--tokens-file works with issue and revoke only, not {args.action}")
        return 2
    who = args.principal or args.token_id
    if not who:
        fail("name the partner/principal whose tokens to revoke")
        return 2
    removed = revoke_tokens(who, path)
    say(f"revoked {removed} token(s) of {who}")
    return 0 if removed else 1


def _register_access(sub: Subparsers) -> None:
    from services.common.identity import ROLES

    access = sub.add_parser(
        "access", help="principals, roles and tokens: issue, list, rotate, revoke"
    )
    actions = access.add_subparsers(dest="action", required=True, metavar="ACTION")
    credentials = argparse.ArgumentParser(add_help=False)
    credentials.add_argument(
        "--credentials-file",
        help="default: $VERBUND_CREDENTIALS_FILE or $VERBUND_DATA_DIR/credentials.yaml",
    )
    legacy = argparse.ArgumentParser(add_help=False)
    legacy.add_argument(
        "--tokens-file",
        help="write a legacy per-service tokens file {id: [hash]} instead (gateway: partners, "
        "coordinator: coordinators)",
    )

    issue = actions.add_parser(
        "issue", parents=[credentials, legacy], help="create a token (shown once)"
    )
    issue.add_argument("principal", help="principal id (a partner's id for partners)")
    issue.add_argument(
        "--role", choices=[r.value for r in ROLES], help="default: partner (as before roles)"
    )
    issue.add_argument("--expires-days", type=float, help="the token expires after N days")
    issue.set_defaults(handler=_cmd_access)

    listing = actions.add_parser(
        "list", parents=[credentials], help="tokens by id, role and dates (never the tokens)"
    )
    listing.add_argument("--principal", help="only this principal's tokens")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=_cmd_access)

    rotate = actions.add_parser(
        "rotate", parents=[credentials], help="new token for the same principal, old one retired"
    )
    rotate.add_argument("token_id", help="id of the token to replace (see `verbund access list`)")
    rotate.add_argument(
        "--grace-hours",
        type=float,
        default=0.0,
        help="keep the old token valid this long (default 0: revoked at once)",
    )
    rotate.set_defaults(handler=_cmd_access)

    revoke = actions.add_parser(
        "revoke", parents=[credentials, legacy], help="remove one token or all of a principal"
    )
    revoke.add_argument(
        "token_id", nargs="?", help="token id (with --tokens-file: a partner/principal id)"
    )
    revoke.add_argument("--principal", help="revoke every token of this principal")
    revoke.set_defaults(handler=_cmd_access)


def register(sub: Subparsers) -> None:
    gateway = sub.add_parser("gateway", help="run the HTTP gateway for partners without Kafka")
    gateway.set_defaults(handler=_cmd_gateway)

    schemas = sub.add_parser("schemas", help="generate or check the JSON Schema/AsyncAPI files")
    schemas.add_argument("action", choices=["generate", "check"])
    schemas.add_argument("--dir", help="target folder (default: the schemas package)")
    schemas.set_defaults(handler=_cmd_schemas)

    _register_access(sub)

    from protocols.cli import register as register_protocols
    from services.coordinator import cli as coordinator_cli

    register_protocols(sub, protocol_extra=coordinator_cli.register_protocol_run)
    coordinator_cli.register(sub)

    from services.coordinator.purchasing_cli import register as register_purchasing

    register_purchasing(sub)

    from services.audit.cli import register as register_audit

    register_audit(sub)

    from services.console.cli import register as register_console

    register_console(sub)

    from services.bridge.cli import register as register_bridge

    register_bridge(sub)
