"""Turn pydantic validation errors into precise, field-level messages."""

from __future__ import annotations

from pydantic import ValidationError

# the partner event types (schemas.events.PARTNER_EVENT_TYPES; a test keeps them equal)
_UNION_TAGS = (
    "StockReported",
    "CapacityOffered",
    "NeedReported",
    "CapacityNeeded",
    "PurchaseDemandReported",
    "OrderAcknowledged",
)
_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def _location(loc: tuple[int | str, ...], error_type: str = "") -> str:
    parts: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(part, str) and part.startswith("function-after"):
            continue
        # Drop the discriminator tag that pydantic puts in front of a tagged union's
        # fields (at the start, or after a list index when events come in a batch).
        if part in _UNION_TAGS and (index == 0 or isinstance(loc[index - 1], int)):
            continue
        parts.append(str(part))
    if error_type in _TAG_ERRORS:
        # A missing or unknown event type is a problem of the ``type`` field.
        parts.append("type")
    return ".".join(parts) or "(message)"


def field_errors(exc: ValidationError, limit: int = 20) -> list[str]:
    """One ``field: problem`` line per error, at most ``limit`` of them."""
    lines = []
    for err in exc.errors(include_url=False)[:limit]:
        lines.append(f"{_location(tuple(err['loc']), err['type'])}: {err['msg']}")
    return lines


def field_error_details(exc: ValidationError, limit: int = 20) -> list[dict[str, str]]:
    """Structured form of :func:`field_errors` for HTTP answers."""
    return [
        {
            "field": _location(tuple(err["loc"]), err["type"]),
            "problem": err["msg"],
            "code": err["type"],
        }
        for err in exc.errors(include_url=False)[:limit]
    ]
