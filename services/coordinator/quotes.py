"""The coordinator's book of supplier quotes for joint purchasing pools (pure).

Rebuilt at start from ``verbund.purchasing.quotes`` (the coordinator is its only writer);
the newest record of a supplier/material wins, an empty tier list withdraws the quote.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import orjson
from pydantic import ValidationError

from schemas.purchasing import SupplierQuoteSet
from schemas.scenario import SupplierOffer
from services.common.logging import get_logger

log = get_logger("coordinator.quotes")


class QuoteBook:
    def __init__(self) -> None:
        self.quotes: dict[tuple[str, str], SupplierQuoteSet] = {}

    def put(self, quote: SupplierQuoteSet) -> None:
        if quote.tiers:
            self.quotes[quote.key] = quote
        else:
            self.quotes.pop(quote.key, None)

    def load(self, raws: Iterable[bytes]) -> int:
        """Fold recorded quotes in order; recovery markers and unreadable records are
        skipped (logged). Returns how many quotes were applied."""
        applied = 0
        for raw in raws:
            try:
                if "marker" in orjson.loads(raw):
                    continue
                self.put(SupplierQuoteSet.model_validate_json(raw))
                applied += 1
            except (ValueError, ValidationError, TypeError) as exc:
                log.warning("quote_record_unreadable", error=str(exc)[:300])
        return applied

    def offers(self, materials: Iterable[str] | None, today: date) -> list[SupplierOffer]:
        """Usable quotes (not withdrawn, not expired) for ``materials`` (None: all)."""
        wanted = None if materials is None else set(materials)
        return [
            quote.offer()
            for key, quote in sorted(self.quotes.items())
            if quote.usable(today) and (wanted is None or key[1] in wanted)
        ]
