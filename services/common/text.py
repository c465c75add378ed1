"""Free text from outside (partner messages, request bodies) made safe to serialise."""

from __future__ import annotations


def bounded_text(text: str, limit: int) -> str:
    """Text that UTF-8 and canonical JSON can write (lone surrogates, which a JSON ``\\ud800``
    escape produces, written as backslash escapes), at most ``limit`` characters."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]
