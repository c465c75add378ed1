"""The console's live stream ends when its token is revoked (revocation takes effect for
open streams too, not only for new requests)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from services.common.identity import revoke
from services.console.api import SERVICE_KEY
from tests.unit.access_apps import OWN_PARTNER, build
from tests.unit.console.test_views import issued


async def _event(response: ClientResponse, timeout: float = 3.0) -> dict[str, Any] | None:
    """The next event's data, or None when the server ended the stream."""
    buffer = b""
    while b"\n\n" not in buffer:
        chunk = await asyncio.wait_for(response.content.readany(), timeout)
        if not chunk:
            return None
        buffer += chunk
    data: dict[str, Any] = json.loads(buffer.split(b"data: ", 1)[1].split(b"\n\n", 1)[0])
    return data


async def test_a_revoked_partner_token_ends_its_open_stream(tmp_path: Path) -> None:
    setup = build(tmp_path)
    console = TestClient(TestServer(setup.apps["console"]))
    await console.start_server()
    service = setup.apps["console"][SERVICE_KEY]
    headers = {"Authorization": f"Bearer {setup.tokens['partner']}"}
    try:
        response = await console.get("/v1/events/stream", headers=headers)
        assert response.status == 200
        assert await _event(response) is not None
        service.ops.apply_order(issued("o-before", OWN_PARTNER, True))
        service._notify()
        seen = await _event(response)
        assert seen is not None and "o-before" in {o["order_id"] for o in seen["mine"]["orders"]}

        revoke(setup.credentials, principal=OWN_PARTNER)
        service.ops.apply_order(issued("o-after", OWN_PARTNER, True))
        service._notify()
        after = [await _event(response) for _ in range(3)]
        assert None in after  # the stream ended ...
        delivered = [e for e in after[: after.index(None)] if e is not None]
        # ... without the order issued after the revocation
        assert all("o-after" not in {o["order_id"] for o in e["mine"]["orders"]} for e in delivered)
        assert (await console.get("/v1/mine", headers=headers)).status == 401
    finally:
        await console.close()
