"""``verbund purchasing``: supplier quotes of the joint purchasing pools (coordinators only).

Quotes are the only prices in Verbund; they go to the coordinator's API, which records
them on ``verbund.purchasing.quotes`` (audited) and uses them in joint purchasing runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from services.cli.console import fail, say, table
from services.coordinator.cli import ApiError, call_api

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def parse_tier(text: str) -> dict[str, float]:
    """``MIN_QUANTITY:UNIT_PRICE`` -> a tier; raises ``argparse.ArgumentTypeError``."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return {"min_quantity": float(parts[0]), "unit_price": float(parts[1])}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected MIN_QUANTITY:UNIT_PRICE, e.g. 1000:1.50"
        ) from None


def _show(quotes: list[dict[str, Any]]) -> None:
    rows = [
        [
            q["supplier_id"],
            q["material_id"],
            "  ".join(f"{t['min_quantity']:g}+: {t['unit_price']:.2f}" for t in q["tiers"]),
            q.get("valid_until") or "-",
            q["set_by"],
            q["at"][:19],
        ]
        for q in quotes
    ]
    say(
        table(
            [
                "supplier",
                "material",
                "tiers (from qty: unit price)",
                "valid until",
                "by",
                "set (UTC)",
            ],
            rows,
        )
    )


def cmd_quotes(args: argparse.Namespace) -> int:
    try:
        _show(call_api("GET", "/v1/purchasing/quotes"))
    except ApiError as exc:
        fail(str(exc))
        return 1
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    path = f"/v1/purchasing/quotes/{args.supplier}/{args.material}"
    try:
        if args.action == "set":
            if not args.tier:
                fail("give at least one --tier MIN_QUANTITY:UNIT_PRICE")
                return 2
            body: dict[str, Any] = {"tiers": args.tier}
            if args.valid_until:
                body["valid_until"] = args.valid_until
            quote = call_api("PUT", path, body)
            _show([quote])
        else:
            call_api("DELETE", path)
            say(f"quote of {args.supplier} for {args.material} withdrawn")
    except ApiError as exc:
        fail(str(exc))
        return 1
    return 0


def register(sub: Subparsers) -> None:
    purchasing = sub.add_parser("purchasing", help="supplier quotes of joint purchasing pools")
    psub = purchasing.add_subparsers(dest="purchasing_command", required=True)
    quotes = psub.add_parser("quotes", help="list the supplier quotes (coordinators only)")
    quotes.set_defaults(handler=cmd_quotes)
    quote = psub.add_parser("quote", help="set or withdraw a supplier's quote for a material")
    quote.add_argument("action", choices=["set", "withdraw"])
    quote.add_argument("supplier", help="supplier id, e.g. medsupply")
    quote.add_argument("material", help="material id, e.g. MASK-FFP2")
    quote.add_argument(
        "--tier",
        action="append",
        type=parse_tier,
        default=[],
        help="MIN_QUANTITY:UNIT_PRICE, repeatable; from MIN_QUANTITY on every unit costs "
        "UNIT_PRICE (all-units discount)",
    )
    quote.add_argument("--valid-until", default=None, help="last day the quote holds (ISO date)")
    quote.set_defaults(handler=cmd_quote)
