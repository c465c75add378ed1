"""The gateway on the real embedded broker: 202 only after the write, auth, metrics, logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from schemas.events import StockReported, parse_partner_event
from services.common.broker import BrokerError, EmbeddedBroker, free_port
from services.common.kafka import durable_producer, ensure_topics
from services.gateway.app import GatewayServer, create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenStore, issue_token

from .conftest import (
    OTHER,
    PARTNER,
    Gateway,
    Tokens,
    TopicReader,
    ack_event,
    capacity_event,
    need_event,
    stock_event,
)

pytestmark = pytest.mark.integration


def _by_event_id(records: list[Any]) -> dict[str, Any]:
    return {json.loads(r.value)["event_id"]: r for r in records}


async def test_accepted_event_is_in_kafka_keyed_by_partner(
    gateway: Gateway, reader: TopicReader
) -> None:
    start = await reader.mark()
    event = stock_event()
    status, body = await gateway.post(event)
    assert status == 202, body
    assert body == {"status": 202, "accepted": 1, "event_ids": [event["event_id"]]}
    # 202 means acknowledged: the record is readable right away, without waiting.
    records = _by_event_id(await reader.read_until(start, {event["event_id"]}, timeout=5))
    record = records[event["event_id"]]
    assert record.key == PARTNER.encode()
    parsed = parse_partner_event(record.value)
    assert isinstance(parsed, StockReported)
    assert parsed == parse_partner_event(json.dumps(event))
    assert dict(record.headers)["verbund-source"] == b"gateway"


async def test_batch_of_all_event_types_written_in_order(
    gateway: Gateway, reader: TopicReader
) -> None:
    start = await reader.mark()
    events = [stock_event(), need_event(), capacity_event(), ack_event()]
    status, body = await gateway.post(events)
    assert status == 202, body
    assert body["accepted"] == 4
    read = await reader.read_until(start, {e["event_id"] for e in events}, timeout=5)
    records = [r for r in read if r.key == PARTNER.encode()]
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert ids[-4:] == [e["event_id"] for e in events]
    assert len({r.partition for r in records[-4:]}) == 1
    assert [parse_partner_event(r.value).type for r in records[-4:]] == [
        "StockReported",
        "NeedReported",
        "CapacityOffered",
        "OrderAcknowledged",
    ]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "missing Authorization"),
        ({"Authorization": ""}, "missing Authorization"),
        ({"Authorization": "Basic a2xpbmlrdW06c2VjcmV0"}, "Bearer"),
        ({"Authorization": "Bearer "}, "Bearer"),
        ({"Authorization": "Bearer vbd_not-a-real-token"}, "unknown"),
        ({"Authorization": "Token vbd_x"}, "Bearer"),
    ],
)
async def test_missing_or_bad_token_is_401(
    gateway: Gateway, reader: TopicReader, headers: dict[str, str], problem: str
) -> None:
    start = await reader.mark()
    event = stock_event()
    status, body = await gateway.post(event, partner=None, headers=headers)
    assert status == 401
    assert body["reason"] == "unauthorized"
    assert body["errors"][0]["field"] == "Authorization"
    assert problem in body["message"]
    # a valid event after it (same key, same partition) is there; the refused one is not
    follow = stock_event()
    assert (await gateway.post(follow))[0] == 202
    written = _by_event_id(await reader.read_until(start, {follow["event_id"]}))
    assert event["event_id"] not in written


async def test_token_of_one_partner_cannot_report_for_another(
    gateway: Gateway, reader: TopicReader
) -> None:
    start = await reader.mark()
    foreign = stock_event(partner=PARTNER)
    status, body = await gateway.post(foreign, partner=OTHER)
    assert status == 403
    assert body["reason"] == "forbidden_partner"
    assert [e["field"] for e in body["errors"]] == ["partner_id"]
    # the other partner's own event goes through with the same token
    own = stock_event(partner=OTHER)
    status, _ = await gateway.post(own, partner=OTHER)
    assert status == 202
    follow = stock_event(partner=PARTNER)
    assert (await gateway.post(follow))[0] == 202
    written = _by_event_id(
        await reader.read_until(start, {own["event_id"], follow["event_id"]})
    )
    assert foreign["event_id"] not in written
    assert written[own["event_id"]].key == OTHER.encode()


async def test_a_newly_issued_token_works_without_restart(
    settings: GatewaySettings, tokens: Tokens, bootstrap: str, tmp_path: Path
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    path = tmp_path / "tokens.yaml"
    issue_token(PARTNER, path)
    local = settings.model_copy(
        update={"gateway_tokens_file": path, "gateway_token_reload_seconds": 0.0}
    )
    producer = durable_producer(bootstrap)
    await producer.start()
    client = TestClient(TestServer(create_app(local, producer)))
    await client.start_server()
    try:
        token = issue_token(OTHER, path)
        response = await client.post(
            "/v1/events",
            data=json.dumps(stock_event(partner=OTHER)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.status == 202
    finally:
        await client.close()
        await producer.stop()


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_metrics_count_accepted_by_type_and_rejected_by_reason(gateway: Gateway) -> None:
    async def scrape() -> str:
        response = await gateway.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()

    before = await scrape()
    assert (await gateway.post([need_event(), need_event()]))[0] == 202
    assert (await gateway.post(stock_event(), partner=None))[0] == 401
    assert (await gateway.post(b"{nope"))[0] == 400
    after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, labels) - _sample(before, name, labels)

    assert delta("verbund_gateway_events_accepted_total", type="NeedReported") == 2
    assert delta("verbund_gateway_events_accepted_total", type="StockReported") == 0
    assert delta("verbund_gateway_requests_rejected_total", reason="unauthorized") == 1
    assert delta("verbund_gateway_requests_rejected_total", reason="invalid_json") == 1
    assert delta("verbund_gateway_request_duration_seconds_count", outcome="accepted") == 1
    assert delta("verbund_gateway_request_duration_seconds_count", outcome="rejected") == 2


async def test_health(gateway: Gateway) -> None:
    response = await gateway.client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_logs_name_event_and_partner_but_never_stock_figures(gateway: Gateway) -> None:
    event = stock_event()
    event["positions"][0]["on_hand"] = 987654.0
    bad = stock_event()
    bad["positions"][0]["on_hand"] = -123456.0
    with structlog.testing.capture_logs() as logs:
        assert (await gateway.post(event))[0] == 202
        assert (await gateway.post(bad))[0] == 422
    accepted = [entry for entry in logs if entry["event"] == "event_accepted"]
    assert accepted and accepted[0]["event_id"] == event["event_id"]
    assert accepted[0]["partner_id"] == PARTNER
    assert accepted[0]["service"] == "gateway"
    rejected = [entry for entry in logs if entry["event"] == "request_rejected"]
    assert rejected[0]["fields"] == ["positions.0.on_hand"]
    rendered = json.dumps(logs, default=str)
    assert "987654" not in rendered and "123456" not in rendered


async def test_broker_gone_gives_503_then_recovers_nothing(
    settings: GatewaySettings, tokens: Tokens
) -> None:
    """A producer whose broker stopped cannot get an ack: 503 with Retry-After, no 202."""
    from aiohttp.test_utils import TestClient, TestServer

    doomed = EmbeddedBroker().start()
    try:
        await ensure_topics(doomed.bootstrap)
        producer = durable_producer(doomed.bootstrap, request_timeout_ms=1500)
        await producer.start()
        local = settings.model_copy(update={"gateway_send_timeout": 2.0})
        client = TestClient(TestServer(create_app(local, producer)))
        await client.start_server()
        try:
            headers = {**tokens.auth(), "Content-Type": "application/json"}
            ok = await client.post("/v1/events", data=json.dumps(stock_event()), headers=headers)
            assert ok.status == 202
            doomed.stop()
            response = await client.post(
                "/v1/events", data=json.dumps(stock_event()), headers=headers
            )
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert (await response.json())["reason"] == "broker_unavailable"
        finally:
            await client.close()
            await producer.stop()
    finally:
        doomed.stop()


async def test_server_runs_over_real_http(settings: GatewaySettings, tokens: Tokens) -> None:
    server = GatewayServer(settings.model_copy(update={"gateway_port": 0}))
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/v1/events",
                json=stock_event(),
                headers=tokens.auth(),
            ) as response:
                assert response.status == 202
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
    finally:
        await server.stop()


async def test_server_start_fails_with_one_line_when_broker_unreachable(
    settings: GatewaySettings,
) -> None:
    unreachable = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "gateway_send_timeout": 2.0}
    )
    with pytest.raises(BrokerError) as info:
        await GatewayServer(unreachable).start()
    assert "\n" not in str(info.value)


def test_settings_fail_fast_on_missing_tokens_file(tmp_path: Path) -> None:
    from services.common.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="gateway_tokens_file"):
        load_settings(GatewaySettings, gateway_tokens_file=tmp_path / "nope.yaml")
    with pytest.raises(SettingsError, match="gateway_port"):
        path = tmp_path / "t.yaml"
        issue_token(PARTNER, path)
        load_settings(GatewaySettings, gateway_tokens_file=path, gateway_port=70000)


def test_token_store_keeps_last_good_tokens_when_file_breaks(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    token = issue_token(PARTNER, path)
    store = TokenStore.load(path, reload_interval=0.0)
    assert store.partner_for(token) == PARTNER
    path.write_text("klinikum-nord: [md5:abc]\n")
    import os

    os.utime(path, (1, 1))
    assert store.partner_for(token) == PARTNER
    assert store.last_error is not None and "sha256" in store.last_error
