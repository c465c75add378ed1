"""Locating the Debian ``prometheus`` package's binaries (``scripts/install-test-deps.sh``)."""

from __future__ import annotations

import shutil

import pytest

HINT = "install the Debian package: scripts/install-test-deps.sh prometheus (as root)"


def require(binary: str) -> str:
    """Path of ``promtool`` or ``prometheus``; skips the test with the install hint if absent."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not found; {HINT}")
    return path
