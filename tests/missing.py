"""A component a test needs is not installed: skip locally, fail in CI.

Outside CI a developer without root may lack the Debian packages
(``scripts/install-test-deps.sh``); those tests skip with the reason. In CI
(``CI`` set, as ``.ci/run`` runs) the test command installs them first, so a
missing component is a broken setup and must not pass as a skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_component(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI: the test command installs it; this setup is broken)")
    pytest.skip(reason)
