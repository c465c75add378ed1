"""Supplier quotes for the demo's purchasing pool, entered through the coordinator's API
like a coordinator would (``verbund purchasing quote set``)."""

from __future__ import annotations

import os
import time

from services.common.logging import get_logger
from services.coordinator.cli import ApiError, call_api

log = get_logger("demo")

# supplier, material, (from quantity, unit price) tiers: all-units volume discounts
DEMO_QUOTES: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...] = (
    ("medsupply", "FFP2-MASK", ((0, 0.95), (5_000, 0.80), (20_000, 0.62))),
    ("glovefab", "NITRILE-GLOVE", ((0, 0.12), (10_000, 0.09), (50_000, 0.07))),
)


def seed_quotes(timeout: float = 60.0) -> int:
    """Set the demo quotes once the coordinator answers; returns how many were set (0 when
    no coordinator URL and token are configured)."""
    if not (
        os.environ.get("VERBUND_COORDINATOR_URL") and os.environ.get("VERBUND_COORDINATOR_TOKEN")
    ):
        return 0
    deadline = time.monotonic() + timeout
    for supplier, material, tiers in DEMO_QUOTES:
        body = {"tiers": [{"min_quantity": q, "unit_price": p} for q, p in tiers]}
        while True:
            try:
                call_api("PUT", f"/v1/purchasing/quotes/{supplier}/{material}", body)
                break
            except ApiError as exc:
                if time.monotonic() > deadline:
                    log.warning("demo_quote_not_set", supplier=supplier, error=str(exc))
                    return 0
                time.sleep(1.0)
    log.info("demo_quotes_set", quotes=len(DEMO_QUOTES))
    return len(DEMO_QUOTES)
