"""Process-wide settings changed while at least one run is in progress.

Runs may overlap (the coordinator solves in worker threads), so a setting is
applied when the first concurrent run starts and restored when the last one ends,
counted under a lock: :mod:`protocols.gc_pause` and :mod:`protocols.switching`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Applies a setting and returns how to restore it (None: nothing to restore).
Apply = Callable[[], Callable[[], None] | None]


class RunScoped:
    """``with scoped():`` applies the setting for the first of concurrent users and
    restores it after the last one."""

    def __init__(self, apply: Apply) -> None:
        self._apply = apply
        self._lock = threading.Lock()
        self._users = 0
        self._restore: Callable[[], None] | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._restore = self._apply()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._restore is not None:
                    self._restore()
                    self._restore = None
