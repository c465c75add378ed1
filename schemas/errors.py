"""Turn pydantic validation errors into precise, field-level messages."""

from __future__ import annotations

from pydantic import ValidationError

_UNION_TAGS = ("StockReported", "CapacityOffered", "NeedReported", "OrderAcknowledged")


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-after"))]
    # Drop the discriminator tag that pydantic puts first for tagged unions.
    if parts and parts[0] in _UNION_TAGS:
        parts = parts[1:]
    return ".".join(parts) or "(message)"


def field_errors(exc: ValidationError, limit: int = 20) -> list[str]:
    """One ``field: problem`` line per error, at most ``limit`` of them."""
    lines = []
    for err in exc.errors(include_url=False)[:limit]:
        lines.append(f"{_location(tuple(err['loc']))}: {err['msg']}")
    return lines


def field_error_details(exc: ValidationError, limit: int = 20) -> list[dict[str, str]]:
    """Structured form of :func:`field_errors` for HTTP answers."""
    return [
        {"field": _location(tuple(err["loc"])), "problem": err["msg"], "code": err["type"]}
        for err in exc.errors(include_url=False)[:limit]
    ]
