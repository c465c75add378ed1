"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.access_apps import Setup, build


@pytest.fixture
async def coordinator_api(tmp_path: Path) -> AsyncIterator[tuple[Setup, TestClient[Any, Any]]]:
    """The access test setup and a client of its coordinator API."""
    setup = build(tmp_path)
    client: TestClient[Any, Any] = TestClient(TestServer(setup.apps["coordinator"]))
    await client.start_server()
    yield setup, client
    await client.close()
