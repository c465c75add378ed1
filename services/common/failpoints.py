"""Crash points for recovery tests.

``VERBUND_FAILPOINTS=name[,name...]`` makes the process exit at once when it reaches a
named point: ``os._exit``, like a kill (no cleanup, no buffered writes, no clean stop of
Kafka clients). Tests use it to stop a service at a moment a signal from outside cannot hit
reliably, e.g. after a decision is recorded and before it is published. Unset in
production, where a crash point costs one set lookup.

Points: ``coordinator.before_publish`` (a decision is recorded and checkpointed, none of
its messages are out).
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 70

_ACTIVE = frozenset(
    name.strip() for name in os.environ.get("VERBUND_FAILPOINTS", "").split(",") if name.strip()
)


def crash_point(name: str) -> None:
    if name in _ACTIVE:
        sys.stderr.write(f"failpoint {name}: exiting with {EXIT_CODE}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
