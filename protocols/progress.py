"""Progress lines for long command-line operations (drills on large scenarios, replays).

Writes to stderr so that reports on stdout stay clean: a start line, a heartbeat every
few seconds while the work runs, and the elapsed time at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(label: str, stream: TextIO | None = None, every: float = 2.0) -> Iterator[None]:
    out = stream or sys.stderr
    started = time.monotonic()
    finished = threading.Event()
    out.write(f"{label} ...\n")
    out.flush()

    def heartbeat() -> None:
        while not finished.wait(every):
            out.write(f"  ... still {label}: {time.monotonic() - started:.0f} s\n")
            out.flush()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        finished.set()
        beat.join()
        out.write(f"{label}: {outcome} {time.monotonic() - started:.1f} s\n")
        out.flush()
