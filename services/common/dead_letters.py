"""What a dead letter keeps of the original record (shared by every service that writes
dead letters from partner input: the ledger, the coordinator)."""

from __future__ import annotations

import base64
import hashlib

#: Largest original kept in a dead letter. Base64 adds a third: a larger one would make the
#: letter exceed the broker's message limit (Apache Kafka's default is 1 MiB) and the write
#: fail on every retry. Larger originals are named by size and SHA-256 instead.
MAX_DEAD_LETTER_ORIGINAL_BYTES = 512 * 1024


def kept_original(value: bytes | None) -> tuple[str, list[str]]:
    """(``original_base64``, extra ``errors``) for a dead letter of ``value``."""
    original = value or b""
    if len(original) <= MAX_DEAD_LETTER_ORIGINAL_BYTES:
        return base64.b64encode(original).decode("ascii"), []
    return "", [
        f"original value ({len(original)} bytes, sha256 "
        f"{hashlib.sha256(original).hexdigest()}) not kept: larger than "
        f"{MAX_DEAD_LETTER_ORIGINAL_BYTES} bytes"
    ]
