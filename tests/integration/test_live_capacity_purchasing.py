"""Capacity sharing and joint purchasing in the live system.

Partners send CapacityOffered / CapacityNeeded / PurchaseDemandReported on Kafka, a
coordinator enters a supplier quote over HTTP; real ledger and coordinator processes on the
embedded broker turn them into capacity assignments and purchase shares, each partner
receiving only its own orders. Quotes survive a coordinator restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common.failpoints import EXIT_CODE
from services.common.topics import DECISIONS, LEDGER_CHANGELOG, PARTNER_ORDERS, RUNS
from tests.integration.coordinator_stack import CoordinatorStack, partner_event, start_stack
from tests.integration.kafka_helpers import ServiceProcess, TopicCollector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def _protocol(pid: str, optimization: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": pid,
        "title": pid,
        "version": 1,
        "owner": "tests",
        "purpose": "Keep essential supply running in a shortage (test).",
        "last_reviewed": NOW.date().isoformat(),
        "review_interval_days": 90,
        "triggers": [{"type": "manual"}],
        "approval": "automatic",
        "optimization": optimization,
        "response_hours": 1,
    }


def _partner(pid: str, criticality: str, lat: float, lon: float) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid.title(),
        "sector": "hospital" if criticality == "hospital" else "manufacturing",
        "region": "DE-BY",
        "criticality": criticality,
        "sites": [{"id": "s1", "name": "Main", "latitude": lat, "longitude": lon}],
    }


ALLIANCE = {
    "name": "Live capacity and purchasing",
    "partners": [
        _partner("klinik-a", "hospital", 48.14, 11.58),
        _partner("klinik-b", "hospital", 48.37, 10.90),
        _partner("werk-nah", "normal", 48.20, 11.60),
        _partner("werk-fern", "normal", 49.45, 11.08),
    ],
    "agreements": {
        "capacity_lending": [{"partner_id": "werk-nah"}, {"partner_id": "werk-fern"}],
        "purchasing_pools": [
            {"partner_id": "klinik-a", "materials": ["MASK-FFP2"]},
            {"partner_id": "klinik-b", "materials": ["MASK-FFP2"]},
        ],
    },
}


@pytest.fixture(scope="module")
def stack(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorStack]:
    stack = start_stack(
        bootstrap,
        tmp_path_factory.mktemp("live-kinds"),
        ALLIANCE,
        {
            "capacity": _protocol("live-capacity", {"kind": "capacity_sharing"}),
            "purchasing": _protocol("live-purchasing", {"kind": "joint_purchasing"}),
        },
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
async def topics(bootstrap: str) -> AsyncIterator[dict[str, TopicCollector]]:
    collectors = {
        name: await TopicCollector(bootstrap, name).start()
        for name in (PARTNER_ORDERS.name, RUNS.name, LEDGER_CHANGELOG.name, DECISIONS.name)
    }
    yield collectors
    for collector in collectors.values():
        await collector.stop()


def offer(partner: str, offer_id: str, hours: float) -> dict[str, Any]:
    return {
        "type": "CapacityOffered",
        "partner_id": partner,
        "offer_id": offer_id,
        "site_id": "s1",
        "capability": "sterilisation",
        "qualifications": ["iso-13485"],
        "hours": hours,
        "available_from": (NOW - timedelta(hours=1)).isoformat(),
        "available_until": (NOW + timedelta(days=7)).isoformat(),
    }


def demand(partner: str, quantity: float) -> dict[str, Any]:
    return {
        "type": "PurchaseDemandReported",
        "partner_id": partner,
        "material_id": "MASK-FFP2",
        "unit": "pcs",
        "quantity": quantity,
    }


async def in_ledger(changelog: TopicCollector, event_ids: list[str]) -> None:
    """Wait until the ledger wrote these events to its changelog (the snapshot's source)."""
    deadline = time.monotonic() + 60
    # the changelog names each event "partner/event id" (ids are de-duplicated per partner)
    while not set(event_ids) <= {
        i.split("/", 1)[-1] for r in changelog.values() for i in r.get("ids", ())
    }:
        assert time.monotonic() < deadline, f"the ledger did not record {event_ids}"
        await asyncio.sleep(0.05)


async def all_orders_of(
    topics: dict[str, TopicCollector], run_id: str, copies_per_order: int
) -> list[dict[str, Any]]:
    """Wait for every OrderIssued copy of the run's first decision (the copies travel on the
    recipients' partitions, so seeing one says nothing about the others)."""
    [decision] = await topics[DECISIONS.name].wait_for(
        lambda d: d.get("run_id") == run_id and d.get("revision") == 1, timeout=60
    )
    return await topics[PARTNER_ORDERS.name].wait_for(
        lambda o: (
            o.get("type") == "OrderIssued" and o.get("run_id") == run_id and o["revision"] == 1
        ),
        count=decision["orders"] * copies_per_order,
        timeout=30,
    )


async def answer(
    producer: AIOKafkaProducer, partner: str, order_id: str, accepted: bool = True
) -> None:
    await partner_event(
        producer,
        {
            "type": "OrderAcknowledged",
            "partner_id": partner,
            "order_id": order_id,
            "accepted": accepted,
        },
    )


def issued(orders: TopicCollector, run_id: str) -> list[dict[str, Any]]:
    return orders.values(lambda o: o.get("type") == "OrderIssued" and o.get("run_id") == run_id)


async def test_capacity_assignments_from_live_offers_decline_and_replan(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], producer: AIOKafkaProducer
) -> None:
    orders, changelog = topics[PARTNER_ORDERS.name], topics[LEDGER_CHANGELOG.name]
    ids = [
        await partner_event(producer, offer("werk-nah", "o1", 10)),
        await partner_event(producer, offer("werk-fern", "o2", 30)),
        await partner_event(
            producer,
            {
                "type": "CapacityNeeded",
                "partner_id": "klinik-a",
                "need_id": "steri-1",
                "site_id": "s1",
                "capability": "sterilisation",
                "required_qualifications": ["iso-13485"],
                "hours": 16,
                "needed_by": (NOW.date() + timedelta(days=3)).isoformat(),
                "criticality": "hospital",
            },
        ),
    ]
    await in_ledger(changelog, ids)
    anna = stack.tokens["coord-anna"]
    status, run = stack.api("POST", "/v1/protocols/live-capacity/runs", anna)
    assert status == 202, run
    run_id = run["run_id"]
    # all of the decision's order copies (they travel on the recipients' partitions)
    await all_orders_of(topics, run_id, copies_per_order=2)  # provider + partner in need
    first = {o["recipient"]: o for o in issued(orders, run_id) if o["must_answer"]}
    assert {p: o["order"]["hours"] for p, o in first.items()} == {
        "werk-nah": pytest.approx(10),  # the near plant's hours first
        "werk-fern": pytest.approx(6),
    }
    assert all(o["kind"] == "capacity" for o in issued(orders, run_id))
    # the receiver is informed of both assignments; a provider sees only its own
    informed = [o for o in issued(orders, run_id) if o["recipient"] == "klinik-a"]
    assert len(informed) == 2 and not any(o["must_answer"] for o in informed)
    assert all(o["order"]["provider_partner"] == "werk-nah" for o in orders_of(orders, "werk-nah"))

    # the near plant accepts, then the far one declines: the re-plan has nothing left to assign
    # (answers of different partners travel on different partitions: wait for the first)
    for partner, accepted in (("werk-nah", True), ("werk-fern", False)):
        order_id = first[partner]["order_id"]
        await answer(producer, partner, order_id, accepted)
        await orders.wait_for(
            lambda o, i=order_id: o.get("type") == "OrderUpdated" and o["order_id"] == i,  # type: ignore[misc]
            timeout=30,
        )
    await topics[RUNS.name].wait_for(
        lambda r: r["run_id"] == run_id and r.get("revision") == 2, timeout=60
    )
    status, detail = stack.api("GET", f"/v1/runs/{run_id}", anna)
    assert status == 200
    assert detail["decision"]["unmet_by_tier"]["1"] == pytest.approx(6)
    states = {o["order_id"]: o["state"] for o in detail["order_list"]}
    assert states[first["werk-nah"]["order_id"]] == "accepted"
    assert states[first["werk-fern"]["order_id"]] == "declined"


def orders_of(orders: TopicCollector, recipient: str) -> list[dict[str, Any]]:
    return orders.values(
        lambda o: o.get("type") == "OrderIssued" and o.get("recipient") == recipient
    )


async def test_purchase_shares_from_live_demands_and_a_quote(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], producer: AIOKafkaProducer
) -> None:
    orders, changelog = topics[PARTNER_ORDERS.name], topics[LEDGER_CHANGELOG.name]
    anna = stack.tokens["coord-anna"]
    # bad quotes are refused with the field named, nothing is recorded
    status, body = stack.api(
        "PUT",
        "/v1/purchasing/quotes/medsupply/MASK-FFP2",
        anna,
        {
            "tiers": [
                {"min_quantity": 1000, "unit_price": 1.5},
                {"min_quantity": 0, "unit_price": 2},
            ]
        },
    )
    assert status == 422 and "strictly increasing" in body["message"]
    status, body = stack.api(
        "PUT", "/v1/purchasing/quotes/medsupply/MASK-FFP2", anna, {"tiers": [], "price": 1}
    )
    assert status == 422 and "price" in body["message"]
    status, body = stack.api(
        "PUT",
        "/v1/purchasing/quotes/medsupply/MASK-FFP2",
        anna,
        {
            "tiers": [
                {"min_quantity": 0, "unit_price": 2.0},
                {"min_quantity": 1000, "unit_price": 1.5},
            ]
        },
    )
    assert status == 200 and body["set_by"] == "coord-anna"

    ids = [
        await partner_event(producer, demand("klinik-a", 600)),
        await partner_event(producer, demand("klinik-b", 500)),
    ]
    await in_ledger(changelog, ids)
    status, run = stack.api("POST", "/v1/protocols/live-purchasing/runs", anna)
    assert status == 202, run
    run_id = run["run_id"]
    await all_orders_of(topics, run_id, copies_per_order=1)  # a share goes to its partner only
    shares = {o["recipient"]: o for o in issued(orders, run_id)}
    assert set(shares) == {"klinik-a", "klinik-b"}
    for partner, share in shares.items():
        order = share["order"]
        assert share["kind"] == "purchase" and share["must_answer"]
        assert order["partner_id"] == partner  # its own share only, nobody else's
        assert order["unit_price_pooled"] == pytest.approx(1.5)  # 1,100 together reach 1,000
        assert order["cost_pooled"] < order["cost_alone"] and order["saving"] > 0
    assert shares["klinik-a"]["order"]["quantity"] == pytest.approx(600)

    # the quote is recorded: a restarted coordinator still has it
    stack.restart_coordinator()
    status, quotes = stack.api("GET", "/v1/purchasing/quotes", anna)
    assert status == 200
    assert [(q["supplier_id"], q["material_id"], len(q["tiers"])) for q in quotes] == [
        ("medsupply", "MASK-FFP2", 2)
    ]
    status, _ = stack.api("DELETE", "/v1/purchasing/quotes/medsupply/MASK-FFP2", anna)
    assert status == 200
    assert stack.api("GET", "/v1/purchasing/quotes", anna) == (200, [])


async def test_runs_survive_a_coordinator_crash_and_answers_sent_meanwhile_count(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], producer: AIOKafkaProducer
) -> None:
    changelog = topics[LEDGER_CHANGELOG.name]
    anna = stack.tokens["coord-anna"]
    await in_ledger(changelog, [await partner_event(producer, offer("werk-nah", "o3", 12))])
    await in_ledger(
        changelog,
        [
            await partner_event(
                producer,
                {
                    "type": "CapacityNeeded",
                    "partner_id": "klinik-b",
                    "need_id": "steri-2",
                    "site_id": "s1",
                    "capability": "sterilisation",
                    "required_qualifications": ["iso-13485"],
                    "hours": 5,
                    "needed_by": (NOW.date() + timedelta(days=3)).isoformat(),
                    "criticality": "hospital",
                },
            )
        ],
    )
    status, run = stack.api("POST", "/v1/protocols/live-capacity/runs", anna)
    assert status == 202, run
    run_id = run["run_id"]
    to_answer = [
        o for o in await all_orders_of(topics, run_id, copies_per_order=2) if o["must_answer"]
    ]
    assert to_answer
    # the checkpoint written after the publish, then a crash (no clean stop writes anything)
    checkpoint = Path(stack.env["VERBUND_DATA_DIR"]) / "coordinator-state" / f"{run_id}.json"
    deadline = time.monotonic() + 10
    while not (checkpoint.exists() and b'"publish_pending":false' in checkpoint.read_bytes()):
        assert time.monotonic() < deadline, "no checkpoint of the published run"
        await asyncio.sleep(0.05)
    stack.coordinator.kill()
    # the providers answer while the coordinator is down
    for order in to_answer:
        await answer(producer, order["recipient"], order["order_id"])
    stack.coordinator.start()
    stack.wait_ready()
    assert "runs_recovered" in stack.coordinator.log_text()
    await topics[RUNS.name].wait_for(
        lambda r: r["run_id"] == run_id and r["state"] == "completed", timeout=30
    )
    status, detail = stack.api("GET", f"/v1/runs/{run_id}", anna)
    assert status == 200 and detail["state"] == "completed"
    assert {o["order_id"]: o["state"] for o in detail["order_list"]} == {
        o["order_id"]: "accepted" for o in to_answer
    }


def _coordinator(stack: CoordinatorStack, log_name: str, **env: str) -> None:
    """Replace the stack's coordinator by a new process (the previous one must be stopped)."""
    stack.coordinator = ServiceProcess(
        ["coordinator"], {**stack.env, **env}, stack.directory / log_name
    ).start()
    stack.wait_ready()


async def _crash_before_publishing(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], attempt: int
) -> tuple[str, dict[str, Any]]:
    """Trigger a capacity run on a coordinator that dies once its decision is recorded and
    checkpointed, before any message is out; the run id and its checkpoint."""
    stack.coordinator.stop()
    _coordinator(
        stack, f"coordinator-crash-{attempt}.log", VERBUND_FAILPOINTS="coordinator.before_publish"
    )
    status, run = stack.api("POST", "/v1/protocols/live-capacity/runs", stack.tokens["coord-ben"])
    assert status == 202 and run["started"], run
    process = stack.coordinator.process
    assert process is not None
    assert process.wait(60) == EXIT_CODE, stack.coordinator.log_text()[-2000:]
    stack.coordinator.process = None
    checkpoint = Path(stack.env["VERBUND_DATA_DIR"]) / "coordinator-state" / f"{run['run_id']}.json"
    document: dict[str, Any] = json.loads(checkpoint.read_bytes())
    assert document["publish_pending"] is True and document["state"] == "published"
    await asyncio.sleep(1)
    assert not topics[DECISIONS.name].values(lambda d: d.get("run_id") == run["run_id"])
    return str(run["run_id"]), document


async def _accept_everything(
    stack: CoordinatorStack,
    topics: dict[str, TopicCollector],
    producer: AIOKafkaProducer,
    run_id: str,
    revision: int,
) -> set[str]:
    """Wait for the revision's decision and orders, accept them all, see the run complete;
    the ids of the orders issued."""
    [decision] = await topics[DECISIONS.name].wait_for(
        lambda d: d.get("run_id") == run_id and d.get("revision") == revision, timeout=60
    )
    orders = await topics[PARTNER_ORDERS.name].wait_for(
        lambda o: o.get("type") == "OrderIssued"
        and o.get("run_id") == run_id
        and o["revision"] == revision
        and o["must_answer"],
        count=decision["orders"],
        timeout=30,
    )
    for order in orders:
        await answer(producer, order["recipient"], order["order_id"])
    await topics[RUNS.name].wait_for(
        lambda r: r["run_id"] == run_id and r["state"] == "completed", timeout=30
    )
    return {o["order_id"] for o in orders}


async def test_a_decision_cut_short_by_a_crash_is_published_after_the_restart(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], producer: AIOKafkaProducer
) -> None:
    """Crash after the decision was recorded and checkpointed, before its messages went out:
    the restarted coordinator publishes that same decision (same revision, same order ids),
    and the run completes when the partners accept."""
    run_id, document = await _crash_before_publishing(stack, topics, 1)
    revision = document["revision"]
    checkpointed = {o["order_id"] for o in document["orders"] if o["revision"] == revision}
    assert checkpointed
    _coordinator(stack, "coordinator-after-crash-1.log")
    assert "decision_republished" in stack.coordinator.log_text()
    issued_ids = await _accept_everything(stack, topics, producer, run_id, revision)
    assert issued_ids == checkpointed


async def test_a_decision_without_its_run_record_is_taken_back_and_solved_again(
    stack: CoordinatorStack, topics: dict[str, TopicCollector], producer: AIOKafkaProducer
) -> None:
    """Nothing is published before its run record is on disk: a checkpointed decision whose
    record is missing never went out, so the restarted coordinator solves the run again
    (next revision) instead of publishing a decision nobody could reproduce."""
    run_id, document = await _crash_before_publishing(stack, topics, 2)
    revision = document["revision"]
    record = Path(stack.env["VERBUND_DATA_DIR"]) / "runs" / run_id / f"r{revision}.json"
    assert record.exists()
    record.unlink()
    _coordinator(stack, "coordinator-after-crash-2.log")
    await _accept_everything(stack, topics, producer, run_id, revision + 1)
    assert not topics[DECISIONS.name].values(
        lambda d: d.get("run_id") == run_id and d.get("revision") == revision
    )
    status, detail = stack.api("GET", f"/v1/runs/{run_id}", stack.tokens["coord-anna"])
    assert status == 200 and detail["revision"] == revision + 1
