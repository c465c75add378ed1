"""Malformed requests: each gets its precise status, reason and field; nothing is written;
the gateway accepts the next valid event right after."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import (
    MAX_BODY,
    MAX_EVENTS,
    OTHER,
    PARTNER,
    Gateway,
    TopicReader,
    ack_event,
    capacity_event,
    need_event,
    stock_event,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    name: str
    body: Callable[[], Any]  # dict/list (sent as JSON) or raw bytes
    status: int
    reason: str
    field: str
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None


def _pos(**changes: Any) -> dict[str, Any]:
    event = stock_event()
    event["positions"][0].update(changes)
    return event


def _pos_without(name: str) -> dict[str, Any]:
    event = stock_event()
    del event["positions"][0][name]
    return event


def _without(factory: Callable[[], dict[str, Any]], name: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        event = factory()
        del event[name]
        return event

    return build


def _raw(event: dict[str, Any], replace: tuple[str, str]) -> bytes:
    """JSON text with a literal substitution (for values json.dumps cannot produce)."""
    text = json.dumps(event)
    assert replace[0] in text
    return text.replace(replace[0], replace[1], 1).encode()


def _duplicate_positions() -> dict[str, Any]:
    event = stock_event()
    event["positions"].append(dict(event["positions"][0]))
    return event


def _huge() -> bytes:
    event = stock_event()
    event["positions"] = [
        {**event["positions"][0], "material_id": f"MAT-{i:06d}"} for i in range(MAX_BODY // 100)
    ]
    body = json.dumps(event).encode()
    assert len(body) > MAX_BODY
    return body


def _too_many() -> list[dict[str, Any]]:
    return [need_event() for _ in range(MAX_EVENTS + 1)]


def _batch_second_bad() -> list[dict[str, Any]]:
    second = stock_event()
    second["positions"][0]["on_hand"] = -5
    return [stock_event(), second]


def _batch_duplicate_id() -> list[dict[str, Any]]:
    first = stock_event()
    return [first, need_event(event_id=first["event_id"])]


CASES: list[Case] = [
    # --- not JSON / wrong shape ---------------------------------------------------------
    Case("invalid_json", lambda: b'{"type": "StockReported",', 400, "invalid_json", "(body)"),
    Case("empty_body", lambda: b"", 400, "invalid_json", "(body)"),
    Case("not_utf8", lambda: b'{"type": "\xff\xfe"}', 400, "invalid_json", "(body)"),
    Case("trailing_garbage", lambda: json.dumps(need_event()).encode() + b" xyz", 400,
         "invalid_json", "(body)"),
    Case("json_string", lambda: b'"StockReported"', 422, "invalid_event", "(message)"),
    Case("json_null", lambda: b"null", 422, "invalid_event", "(message)"),
    Case("empty_array", lambda: [], 422, "invalid_event", "(body)"),
    # --- envelope -------------------------------------------------------------------------
    Case("missing_type", _without(stock_event, "type"), 422, "invalid_event", "type",
         code="union_tag_not_found"),
    Case("unknown_type", lambda: stock_event(type="PriceReported"), 422, "invalid_event", "type",
         code="union_tag_invalid"),
    Case("schema_version_2", lambda: stock_event(schema_version=2), 422, "invalid_event",
         "schema_version"),
    Case("schema_version_string", lambda: stock_event(schema_version="1"), 422, "invalid_event",
         "schema_version"),
    Case("missing_event_id", _without(stock_event, "event_id"), 422, "invalid_event", "event_id",
         code="missing"),
    Case("short_event_id", lambda: stock_event(event_id="abc"), 422, "invalid_event", "event_id"),
    Case("event_id_number", lambda: stock_event(event_id=12345678901), 422, "invalid_event",
         "event_id"),
    Case("bad_partner_id", lambda: stock_event(partner_id="Klinikum Nord"), 422, "invalid_event",
         "partner_id"),
    Case("missing_occurred_at", _without(stock_event, "occurred_at"), 422, "invalid_event",
         "occurred_at"),
    Case("naive_timestamp", lambda: stock_event(occurred_at="2026-11-22T08:00:00"), 422,
         "invalid_event", "occurred_at", code="timezone_aware"),
    Case("impossible_date", lambda: stock_event(occurred_at="2026-13-45T08:00:00Z"), 422,
         "invalid_event", "occurred_at"),
    Case("timestamp_words", lambda: stock_event(occurred_at="yesterday"), 422, "invalid_event",
         "occurred_at"),
    # --- competition-sensitive or unknown fields -------------------------------------------
    Case("price_field", lambda: stock_event(price=3.25), 422, "invalid_event", "price",
         code="extra_forbidden"),
    Case("margin_field", lambda: stock_event(margin=0.12), 422, "invalid_event", "margin",
         code="extra_forbidden"),
    Case("customer_in_position", lambda: _pos(customer="Apotheke Ost"), 422, "invalid_event",
         "positions.0.customer", code="extra_forbidden"),
    Case("sales_in_position", lambda: _pos(sales_last_month=1200), 422, "invalid_event",
         "positions.0.sales_last_month", code="extra_forbidden"),
    Case("unit_price_in_need", lambda: need_event(unit_price=1.9), 422, "invalid_event",
         "unit_price", code="extra_forbidden"),
    # --- positions ------------------------------------------------------------------------
    Case("empty_positions", lambda: stock_event(positions=[]), 422, "invalid_event", "positions",
         code="too_short"),
    Case("positions_object", lambda: stock_event(positions={"lager-1": 5}), 422, "invalid_event",
         "positions"),
    Case("duplicate_positions", _duplicate_positions, 422, "invalid_event", "positions"),
    Case("negative_on_hand", lambda: _pos(on_hand=-1), 422, "invalid_event",
         "positions.0.on_hand", code="greater_than_equal"),
    Case("negative_safety_stock", lambda: _pos(safety_stock=-0.5), 422, "invalid_event",
         "positions.0.safety_stock"),
    Case("quantity_as_string", lambda: _pos(on_hand="120"), 422, "invalid_event",
         "positions.0.on_hand"),
    Case("quantity_as_bool", lambda: _pos(on_hand=True), 422, "invalid_event",
         "positions.0.on_hand"),
    Case("quantity_null", lambda: _pos(daily_consumption=None), 422, "invalid_event",
         "positions.0.daily_consumption"),
    Case("quantity_nan", lambda: _raw(_pos(on_hand=777.25), ("777.25", "NaN")), 422,
         "invalid_event", "positions.0.on_hand", code="finite_number"),
    Case("quantity_infinity", lambda: _raw(_pos(daily_consumption=777.25),
                                           ("777.25", "Infinity")),
         422, "invalid_event", "positions.0.daily_consumption", code="finite_number"),
    Case("quantity_absurd", lambda: _pos(on_hand=1e15), 422, "invalid_event",
         "positions.0.on_hand", code="less_than_equal"),
    Case("missing_unit", lambda: _pos_without("unit"), 422, "invalid_event", "positions.0.unit",
         code="missing"),
    Case("bad_unit", lambda: _pos(unit="bottles"), 422, "invalid_event", "positions.0.unit",
         code="enum"),
    Case("bad_material_id", lambda: _pos(material_id="nacl 500ml"), 422, "invalid_event",
         "positions.0.material_id", code="string_pattern_mismatch"),
    Case("bad_site_id", lambda: _pos(site_id="Lager 1"), 422, "invalid_event",
         "positions.0.site_id", code="string_pattern_mismatch"),
    # --- other event types ----------------------------------------------------------------
    Case("need_negative", lambda: need_event(quantity=-3), 422, "invalid_event", "quantity"),
    Case("need_bad_date", lambda: need_event(needed_by="next week"), 422, "invalid_event",
         "needed_by"),
    Case("need_bad_criticality", lambda: need_event(criticality="vip"), 422, "invalid_event",
         "criticality", code="enum"),
    Case("capacity_window_reversed", lambda: capacity_event(
        available_from="2026-11-27T18:00:00Z", available_until="2026-11-23T06:00:00Z"),
         422, "invalid_event", "(message)", code="value_error"),
    Case("capacity_naive_window", lambda: capacity_event(available_from="2026-11-23T06:00:00"),
         422, "invalid_event", "available_from", code="timezone_aware"),
    Case("ack_accepted_string", lambda: ack_event(accepted="yes"), 422, "invalid_event",
         "accepted", code="bool_type"),
    Case("ack_reason_too_long", lambda: ack_event(accepted=False, reason="x" * 501), 422,
         "invalid_event", "reason", code="string_too_long"),
    # --- batches --------------------------------------------------------------------------
    Case("batch_second_event_bad", _batch_second_bad, 422, "invalid_event",
         "1.positions.0.on_hand"),
    Case("batch_duplicate_event_id", _batch_duplicate_id, 422, "duplicate_event_id",
         "1.event_id"),
    Case("batch_too_many", _too_many, 413, "too_many_events", "(body)"),
    Case("batch_foreign_partner", lambda: [stock_event(), need_event(partner=OTHER)], 403,
         "forbidden_partner", "1.partner_id"),
    # --- transport ------------------------------------------------------------------------
    Case("payload_too_large", _huge, 413, "payload_too_large", "(body)"),
    Case("text_plain", stock_event, 415, "unsupported_media_type", "Content-Type",
         headers={"Content-Type": "text/plain"}),
    Case("form_encoded", stock_event, 415, "unsupported_media_type", "Content-Type",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("latin1_charset", stock_event, 415, "unsupported_media_type", "Content-Type",
         headers={"Content-Type": "application/json; charset=iso-8859-1"}),
    Case("foreign_partner", lambda: stock_event(partner=OTHER), 403, "forbidden_partner",
         "partner_id"),
]


def test_the_suite_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_bad_input_is_refused_precisely(
    gateway: Gateway, reader: TopicReader, case: Case
) -> None:
    start = await reader.mark()
    body = case.body()
    status, answer = await gateway.post(body, headers=case.headers)
    assert status == case.status, answer
    assert answer["status"] == case.status
    assert answer["reason"] == case.reason, answer
    fields = [error["field"] for error in answer["errors"]]
    assert case.field in fields, answer
    if case.code is not None:
        codes = {e["code"] for e in answer["errors"] if e["field"] == case.field}
        assert case.code in codes, answer
    for error in answer["errors"]:
        assert error["problem"], error

    # The gateway goes on: the next valid event from the same partner is written; being on
    # the same key it lands after anything the bad request might have written.
    follow = stock_event()
    status, _ = await gateway.post(follow)
    assert status == 202
    written = await reader.read_until(start, {follow["event_id"]})
    refused_ids = _event_ids(body)
    leaked = [r for r in written if json.loads(r.value)["event_id"] in refused_ids]
    assert not leaked, "a refused request wrote to Kafka"


def _event_ids(body: Any) -> set[str]:
    events = body if isinstance(body, list) else [body]
    return {
        e["event_id"]
        for e in events
        if isinstance(e, dict) and isinstance(e.get("event_id"), str)
        and e.get("partner_id") in (PARTNER, OTHER)
    }


async def test_chunked_body_over_the_limit_is_413(gateway: Gateway) -> None:
    """No Content-Length (chunked upload): the limit is enforced while reading."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(MAX_BODY // 10_000 + 2):
            yield b" " * 10_000

    response = await gateway.client.post(
        "/v1/events",
        data=chunks(),
        headers={**gateway.tokens.auth(), "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["reason"] == "payload_too_large"
    status, _ = await gateway.post(stock_event())
    assert status == 202


async def test_content_type_missing_is_415(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/v1/events", data=json.dumps(stock_event()).encode(), headers=gateway.tokens.auth()
    )
    # aiohttp's client labels raw bytes application/octet-stream when no type is given
    assert response.status == 415
    assert (await response.json())["errors"][0]["field"] == "Content-Type"
