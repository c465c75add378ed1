"""The coordinator API's supplier quotes and who sees prices (HTTP, Kafka faked at the edge)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from protocols.run import solve
from services.common.topics import QUOTES
from tests.unit.access_apps import FOUR_EYES_PROTOCOL, Setup
from tests.unit.coordinator.test_live_capacity_purchasing import (
    NOW,
    PURCHASING,
    _book,
    demand,
    quote,
    replica_after,
    snapshot_of,
)

QUOTE_PATH = "/v1/purchasing/quotes/medsupply/MASK-FFP2"
GOOD = {
    "tiers": [{"min_quantity": 0, "unit_price": 2.0}, {"min_quantity": 1000, "unit_price": 1.5}]
}


def _auth(setup: Setup, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {setup.tokens[who]}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "tiers": [
                    {"min_quantity": 1000, "unit_price": 1.5},
                    {"min_quantity": 0, "unit_price": 2},
                ]
            },
            "tiers",
        ),
        ({"tiers": [{"min_quantity": 0, "unit_price": -1}]}, "tiers.0.unit_price"),
        ({"tiers": [{"min_quantity": 0, "unit_price": 10**30}]}, "(body)"),
        ({"tiers": [{"min_quantity": "lots", "unit_price": 2}]}, "tiers.0.min_quantity"),
        ({"tiers": GOOD["tiers"], "valid_until": "soon"}, "valid_until"),
        ({"tiers": GOOD["tiers"], "margin": 0.2}, "margin"),
        ({"tiers": []}, "tiers"),
        ({}, "tiers"),
    ],
)
async def test_bad_quotes_are_refused_naming_the_field(
    coordinator_api: tuple[Setup, TestClient[Any, Any]], body: dict[str, Any], field: str
) -> None:
    setup, client = coordinator_api
    answer = await client.put(
        QUOTE_PATH, data=json.dumps(body), headers=_auth(setup, "coordinator")
    )
    payload = await answer.json()
    assert answer.status == 422, payload
    assert field in [e["field"] for e in payload["errors"]], payload
    assert not [t for t, _, _ in setup.producer.sent if t == QUOTES.name]  # nothing recorded


async def test_a_quote_is_recorded_listed_and_withdrawn_by_coordinators_only(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    answer = await client.put(
        QUOTE_PATH, data=orjson.dumps(GOOD), headers=_auth(setup, "coordinator")
    )
    assert answer.status == 200
    [(_, key, value)] = [r for r in setup.producer.sent if r[0] == QUOTES.name]
    assert key == b"medsupply/MASK-FFP2" and orjson.loads(value)["set_by"] == "coord-anna"
    listed = await (
        await client.get("/v1/purchasing/quotes", headers=_auth(setup, "coordinator"))
    ).json()
    assert [q["supplier_id"] for q in listed] == ["medsupply"]
    for role in ("auditor", "operator", "partner"):
        refused = await client.get("/v1/purchasing/quotes", headers=_auth(setup, role))
        assert refused.status == 403
    gone = await client.delete(QUOTE_PATH, headers=_auth(setup, "coordinator"))
    assert gone.status == 200
    assert (
        await (
            await client.get("/v1/purchasing/quotes", headers=_auth(setup, "coordinator"))
        ).json()
        == []
    )


async def test_auditors_see_purchase_shares_without_prices(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
) -> None:
    setup, client = coordinator_api
    core = setup.coordinator.core
    run_id = setup.new_run()  # the four-eyes purchasing protocol
    run = core.runs[run_id]
    assert run.protocol.id == FOUR_EYES_PROTOCOL
    core.approve(run_id, "coord-anna", "t1", NOW)
    core.approve(run_id, "coord-ben", "t2", NOW)
    replica = replica_after([demand("klinik-a", 600), demand("klinik-b", 500)])
    snap = snapshot_of(
        replica, PURCHASING, run.adjustments, _book(quote("medsupply", [(0, 2.0), (1000, 1.5)]))
    )
    core.solved(run_id, solve(run.protocol, snap, run_id=run_id), 0.01, NOW)
    as_coordinator = await (
        await client.get(f"/v1/runs/{run_id}", headers=_auth(setup, "coordinator"))
    ).json()
    as_auditor = await (
        await client.get(f"/v1/runs/{run_id}", headers=_auth(setup, "auditor"))
    ).json()
    priced = [o["order"] for o in as_coordinator["order_list"]]
    redacted = [o["order"] for o in as_auditor["order_list"]]
    assert priced and all("unit_price_pooled" in o and "saving" in o for o in priced)
    assert all(
        not {"unit_price_pooled", "cost_pooled", "cost_alone", "saving"} & set(o) for o in redacted
    )
    assert [o["quantity"] for o in redacted] == [o["quantity"] for o in priced]
    assert as_auditor["decision"]["total_cost"] is None
    assert as_coordinator["decision"]["total_cost"] > 0
