"""A body the gateway cannot decode (a broken or unsupported ``Content-Encoding``) is a
precise 400 in the gateway's error format, not a 500; nothing is written."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import GatewayMetrics, create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import issue_token
from tests.gateway.conftest import PARTNER, need_event
from tests.unit.access_apps import FakeProducer


class Gateway:
    def __init__(self, client: TestClient[Any, Any], producer: FakeProducer, token: str) -> None:
        self.client = client
        self.producer = producer
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    tokens = tmp_path / "tokens.yaml"
    token = issue_token(PARTNER, tokens)
    settings = GatewaySettings(gateway_tokens_file=tokens, kafka_bootstrap="localhost:9")
    producer = FakeProducer()
    app = create_app(settings, producer, metrics=GatewayMetrics())  # type: ignore[arg-type]
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Gateway(client, producer, token)
    finally:
        await client.close()


async def test_a_body_that_is_not_gzip_but_says_so_is_a_precise_400(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(need_event()).encode()  # plain JSON, labelled as gzip
    response = await gateway.client.post(
        "/v1/events", data=body, headers={**gateway.headers, "Content-Encoding": "gzip"}
    )
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["status"] == 400
    assert answer["errors"][0]["field"] == "Content-Encoding"
    assert "gzip" in answer["message"]
    assert gateway.producer.sent == []
    await asyncio.sleep(0.05)  # aiohttp finishes the request after the answer
    assert not [r for r in caplog.records if r.name == "aiohttp.server"], caplog.text


async def test_a_truncated_gzip_body_is_a_precise_400(gateway: Gateway) -> None:
    body = gzip.compress(json.dumps(need_event()).encode())[:-12]
    response = await gateway.client.post(
        "/v1/events", data=body, headers={**gateway.headers, "Content-Encoding": "gzip"}
    )
    # aiohttp only notices the missing end at EOF: either way no 500 and nothing written
    assert response.status in (400, 422), await response.text()
    answer = await response.json()
    assert answer["status"] == response.status
    assert gateway.producer.sent == []


async def test_a_valid_gzip_body_is_accepted_after_a_broken_one(gateway: Gateway) -> None:
    broken = await gateway.client.post(
        "/v1/events", data=b"not gzip", headers={**gateway.headers, "Content-Encoding": "gzip"}
    )
    assert broken.status == 400
    event = need_event()
    response = await gateway.client.post(
        "/v1/events",
        data=gzip.compress(json.dumps(event).encode()),
        headers={**gateway.headers, "Content-Encoding": "gzip"},
    )
    assert response.status == 202, await response.text()
    assert [json.loads(value)["event_id"] for _, _, value in gateway.producer.sent] == [
        event["event_id"]
    ]
