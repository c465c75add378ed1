"""Locating the Debian ``prometheus`` package's binaries (``scripts/install-test-deps.sh``)."""

from __future__ import annotations

import shutil

from tests.missing import missing_component

HINT = "install the Debian package: scripts/install-test-deps.sh prometheus (as root)"


def require(binary: str) -> str:
    """Path of ``promtool`` or ``prometheus``; if absent, skips the test (fails it in CI)
    with the install hint."""
    path = shutil.which(binary)
    if path is None:
        missing_component(f"{binary} not found; {HINT}")
    return path
