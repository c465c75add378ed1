"""From a shortage alert to a decision and orders, through a decline and the re-plan.

Broker, ledger and coordinator are real: the embedded broker and `verbund ledger` /
`verbund coordinator` processes. Partners talk Kafka only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.coordination import OrderIssued, OrderUpdated
from services.common.topics import DECISIONS, PARTNER_ORDERS, RUNS
from tests.integration.coordinator_stack import CoordinatorStack, start_stack
from tests.integration.coordinator_stack import partner_event as send_partner_event
from tests.integration.kafka_helpers import TopicCollector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)

PROTOCOL = {
    "id": "e2e-reallocation",
    "title": "E2E reallocation of saline",
    "version": 1,
    "owner": "tests",
    "purpose": "Keep essential supply running in a shortage (test).",
    "description": "Hospitals in shortage get saline from partners with surplus.",
    "last_reviewed": NOW.date().isoformat(),
    "review_interval_days": 90,
    "scope": {"materials": ["NACL-500ML"]},
    "triggers": [
        {"type": "manual"},
        {"type": "coverage_below", "criticality": "hospital", "days": 3},
    ],
    "approval": "automatic",
    "optimization": {"kind": "material_reallocation"},
    "response_hours": 1,
}
FOUR_EYES = {
    **PROTOCOL,
    "id": "e2e-four-eyes",
    "title": "Four-eyes reallocation of propofol",
    "scope": {"materials": ["PROPOFOL-20ML"]},
    "triggers": [{"type": "manual"}],
    "approval": "two_coordinators",
}


def _site(lat: float, lon: float) -> list[dict[str, Any]]:
    return [{"id": "s1", "name": "Main", "latitude": lat, "longitude": lon}]


ALLIANCE = {
    "name": "E2E alliance",
    "partners": [
        {
            "id": "hosp-e2e",
            "name": "Klinikum",
            "sector": "hospital",
            "region": "DE-BY",
            "criticality": "hospital",
            "sites": _site(48.14, 11.58),
        },
        {
            "id": "near-donor",
            "name": "Near",
            "sector": "pharma",
            "region": "DE-BY",
            "criticality": "normal",
            "sites": _site(48.20, 11.60),
        },
        {
            "id": "far-donor",
            "name": "Far",
            "sector": "pharma",
            "region": "DE-NW",
            "criticality": "normal",
            "sites": _site(51.23, 6.78),
        },
    ],
    "agreements": {
        "surplus_sharing": [
            {"partner_id": "near-donor", "share": 0.5},
            {"partner_id": "far-donor", "share": 0.5},
        ]
    },
}


@pytest.fixture(scope="module")
def stack(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorStack]:
    stack = start_stack(
        bootstrap,
        tmp_path_factory.mktemp("coordinator"),
        ALLIANCE,
        {
            "e2e": PROTOCOL,
            "four-eyes": FOUR_EYES,
            "broken": "id: broken\nversion: not-a-number\n",
        },
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
async def topics(bootstrap: str) -> AsyncIterator[dict[str, TopicCollector]]:
    collectors = {
        name: await TopicCollector(bootstrap, name).start()
        for name in (PARTNER_ORDERS.name, DECISIONS.name, RUNS.name)
    }
    yield collectors
    for collector in collectors.values():
        await collector.stop()


def api(stack: CoordinatorStack, method: str, path: str, token: str, body: Any = None) -> Any:
    return stack.api(method, path, token, body)


async def partner_event(producer: AIOKafkaProducer, event: dict[str, Any]) -> None:
    await send_partner_event(producer, event, at=NOW)


def stock(partner: str, material: str, on_hand: float, safety: float, daily: float) -> dict:
    return {
        "type": "StockReported",
        "partner_id": partner,
        "positions": [
            {
                "site_id": "s1",
                "material_id": material,
                "unit": "pcs",
                "on_hand": on_hand,
                "safety_stock": safety,
                "daily_consumption": daily,
            }
        ],
    }


def need(material: str, quantity: float) -> dict[str, Any]:
    return {
        "type": "NeedReported",
        "partner_id": "hosp-e2e",
        "need_id": f"need-{material}",
        "site_id": "s1",
        "material_id": material,
        "unit": "pcs",
        "quantity": quantity,
        "needed_by": (NOW.date() + timedelta(days=2)).isoformat(),
        "criticality": "hospital",
    }


def orders_for(collector: TopicCollector, recipient: str, run_id: str | None = None) -> list:
    return collector.values(
        lambda o: (
            o.get("type") == "OrderIssued"
            and o.get("recipient") == recipient
            and (run_id is None or o.get("run_id") == run_id)
        )
    )


async def test_alert_to_orders_decline_replan_and_completion(stack, topics, producer) -> None:
    orders, decisions, runs = topics[PARTNER_ORDERS.name], topics[DECISIONS.name], topics[RUNS.name]
    await partner_event(producer, stock("near-donor", "NACL-500ML", 300, 100, 5))
    await partner_event(producer, stock("far-donor", "NACL-500ML", 500, 100, 5))
    await partner_event(producer, need("NACL-500ML", 100))
    # coverage 1 day < 3 days for a hospital: the automatic trigger fires
    await partner_event(producer, stock("hosp-e2e", "NACL-500ML", 10, 50, 10))

    [first] = await orders.wait_for(
        lambda o: o.get("type") == "OrderIssued" and o.get("recipient") == "near-donor", timeout=90
    )
    run_id = first["run_id"]
    for message in orders.values(lambda o: o.get("run_id") == run_id):  # contract holds
        model = OrderIssued if message["type"] == "OrderIssued" else OrderUpdated
        model.model_validate(message, strict=False)
    assert first["must_answer"] is True and first["kind"] == "transfer"
    assert first["order"]["from_partner"] == "near-donor"
    assert first["order"]["to_partner"] == "hosp-e2e"
    assert first["order"]["quantity"] == pytest.approx(100)
    # the receiver is informed of the same order; the far donor learns nothing
    [informed] = await orders.wait_for(
        lambda o: o.get("type") == "OrderIssued" and o.get("recipient") == "hosp-e2e", timeout=10
    )
    assert informed["order_id"] == first["order_id"] and informed["must_answer"] is False
    assert orders_for(orders, "far-donor") == []
    ours = orders.values(lambda o: o.get("run_id") == run_id)
    assert ours and all(o["recipient"] in ("near-donor", "hosp-e2e") for o in ours)
    [decision] = await decisions.wait_for(lambda d: d["run_id"] == run_id, timeout=10)
    assert decision["revision"] == 1 and decision["status"] == "optimal"
    assert decision["unmet_by_tier"]["1"] == pytest.approx(0)

    # the near donor declines: the coordinator re-plans without it
    await partner_event(
        producer,
        {
            "type": "OrderAcknowledged",
            "partner_id": "near-donor",
            "order_id": first["order_id"],
            "accepted": False,
            "reason": "needed ourselves",
        },
    )
    [replanned] = await orders.wait_for(
        lambda o: o.get("type") == "OrderIssued" and o.get("recipient") == "far-donor", timeout=60
    )
    assert replanned["run_id"] == run_id and replanned["revision"] == 2
    assert replanned["order"]["quantity"] == pytest.approx(100)
    await orders.wait_for(
        lambda o: (
            o.get("type") == "OrderUpdated"
            and o["order_id"] == first["order_id"]
            and o["state"] == "declined"
        ),
        timeout=10,
    )
    await decisions.wait_for(lambda d: d["run_id"] == run_id and d["revision"] == 2, timeout=10)

    # a partner cannot answer an order that is not its own
    await partner_event(
        producer,
        {
            "type": "OrderAcknowledged",
            "partner_id": "hosp-e2e",
            "order_id": replanned["order_id"],
            "accepted": False,
        },
    )
    # the far donor accepts: the run is complete
    await partner_event(
        producer,
        {
            "type": "OrderAcknowledged",
            "partner_id": "far-donor",
            "order_id": replanned["order_id"],
            "accepted": True,
        },
    )
    await runs.wait_for(lambda r: r["run_id"] == run_id and r["state"] == "completed", timeout=30)
    status, run = api(stack, "GET", f"/v1/runs/{run_id}", stack.tokens["coord-anna"])
    assert status == 200 and run["state"] == "completed"
    states = {o["order_id"]: o["state"] for o in run["order_list"]}
    assert states[first["order_id"]] == "declined"
    assert states[replanned["order_id"]] == "accepted"

    # every revision was recorded and solves again to the identical decision
    replay = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "replay", run_id, "--revision", "2"],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout


async def test_four_eyes_approval_and_one_run_per_scope(stack, topics, producer) -> None:
    await partner_event(producer, stock("near-donor", "PROPOFOL-20ML", 80, 20, 1))
    await partner_event(producer, need("PROPOFOL-20ML", 10))
    await asyncio.sleep(1.5)
    status, run = api(
        stack,
        "POST",
        "/v1/protocols/e2e-four-eyes/runs",
        stack.tokens["coord-anna"],
        {"reason": "drill in production"},
    )
    assert status == 202 and run["state"] == "awaiting_approval" and run["approvals_needed"] == 2
    run_id = run["run_id"]
    # the same scope again: no second run
    status, again = api(
        stack, "POST", "/v1/protocols/e2e-four-eyes/runs", stack.tokens["coord-ben"]
    )
    assert status == 200 and again["run_id"] == run_id and again["started"] is False
    assert api(stack, "POST", f"/v1/runs/{run_id}/approve", stack.tokens["coord-anna"])[0] == 200
    status, refused = api(stack, "POST", f"/v1/runs/{run_id}/approve", stack.tokens["coord-anna"])
    assert status == 409 and "second person" in refused["message"]
    status, approved = api(stack, "POST", f"/v1/runs/{run_id}/approve", stack.tokens["coord-ben"])
    assert status == 200 and approved["approvals"] == ["coord-anna", "coord-ben"]
    [issued] = await topics[PARTNER_ORDERS.name].wait_for(
        lambda o: o.get("type") == "OrderIssued" and o.get("run_id") == run_id and o["must_answer"],
        timeout=60,
    )
    assert issued["recipient"] == "near-donor"
    assert issued["order"]["material_id"] == "PROPOFOL-20ML"
    assert issued["order"]["quantity"] == pytest.approx(10)


def test_bad_requests_and_tokens(stack) -> None:
    assert api(stack, "GET", "/v1/runs", "not-a-token")[0] == 401
    status, body = api(stack, "POST", "/v1/protocols/nope/runs", stack.tokens["coord-anna"])
    assert status == 404 and "nope" in body["message"]
    assert (
        api(stack, "POST", "/v1/runs/run-000000000000/approve", stack.tokens["coord-anna"])[0]
        == 404
    )
    status, protocols = api(stack, "GET", "/v1/protocols", stack.tokens["coord-ben"])
    # the broken protocol file is refused, the others keep working
    assert status == 200 and {p["id"] for p in protocols} == {"e2e-reallocation", "e2e-four-eyes"}
    assert "protocol_refused" in stack.coordinator.log_text()


def test_cli_protocol_run_and_runs(stack) -> None:
    env = {
        **os.environ,
        **stack.env,
        "VERBUND_COORDINATOR_URL": stack.url,
        "VERBUND_COORDINATOR_TOKEN": stack.tokens["coord-ben"],
    }
    cli = [sys.executable, "-m", "services.cli.main"]
    ran = subprocess.run(
        [*cli, "protocol", "run", "e2e-reallocation", "--reason", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "protocol e2e-reallocation v1" in ran.stdout
    assert "state     : published" in ran.stdout or "state     : completed" in ran.stdout
    run_id = ran.stdout.split()[1]
    listed = subprocess.run([*cli, "runs"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and run_id in listed.stdout
    refused = subprocess.run(
        [*cli, "runs"],
        env={**env, "VERBUND_COORDINATOR_TOKEN": "wrong"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "401" in refused.stderr
