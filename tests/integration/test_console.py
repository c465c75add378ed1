"""The console's JSON API and ``verbund status`` against real broker, ledger, coordinator and
console processes: shortages on the board and gone when resolved, freshness, runs approved and
rejected through the console (forwarded to the coordinator), decisions with order states."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.common.broker import free_port
from tests.integration.console_stack import (
    ConsoleStack,
    console_stack,
    http,
    need,
    poll,
    protocol,
    send_event,
    stock,
)
from tests.integration.kafka_helpers import metric_value

pytestmark = pytest.mark.integration

MATERIAL = "API-SALINE-500"
PROTOCOL_ID = "api-saline-approval"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    directory = tmp_path_factory.mktemp("console-api")
    with console_stack(directory, {"p": protocol(PROTOCOL_ID, MATERIAL)}) as s:
        yield s


@pytest.fixture(scope="module")
async def producer(stack: ConsoleStack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


def view(stack: ConsoleStack, name: str, token: str | None = None) -> Any:
    status, body = http(f"{stack.console_url}/v1/{name}", token=token or stack.tokens["coord-anna"])
    assert status == 200, body
    return body


def cell(board: dict[str, Any], material: str, region: str) -> dict[str, Any] | None:
    return next(
        (c for c in board["cells"] if c["material"] == material and c["region"] == region), None
    )


def status_cli(stack: ConsoleStack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "status"],
        env={
            **os.environ,
            "VERBUND_CONSOLE_URL": stack.console_url,
            "VERBUND_COORDINATOR_TOKEN": stack.tokens["coord-ben"],
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tokens_health_and_static_page(stack: ConsoleStack) -> None:
    for path in ("board", "freshness", "runs", "decisions", "session", "events/stream"):
        assert http(f"{stack.console_url}/v1/{path}")[0] == 401, path
        assert http(f"{stack.console_url}/v1/{path}", token="vbd_not-a-token")[0] == 401, path
    status, body = http(
        f"{stack.console_url}/v1/runs/run-000000000000/approve", "POST", "vbd_nope", {}
    )
    assert status == 401 and body["reason"] == "unauthenticated"
    assert http(f"{stack.console_url}/v1/session", token=stack.tokens["coord-anna"]) == (
        200,
        {"principal": "coord-anna", "role": "coordinator", "permissions": ["approve", "view"]},
    )
    assert http(f"{stack.console_url}/healthz")[0] == 200
    status, page = http(f"{stack.console_url}/")
    assert status == 200 and "Verbund operations" in page and "/static/app.js" in page
    status, script = http(f"{stack.console_url}/static/app.js")
    assert status == 200 and "/v1/events/stream" in script


async def test_board_and_freshness_follow_partner_events(stack, producer) -> None:
    await send_event(producer, stock("klinik-sued", MATERIAL, 10, 50, 10))  # 1 day: critical
    await send_event(producer, stock("klinik-west", MATERIAL, 60, 50, 5))  # 12 days: watch
    await send_event(producer, stock("pharma-depot", MATERIAL, 900, 100, 5))
    board = await poll(
        lambda: view(stack, "board"),
        lambda b: cell(b, MATERIAL, "DE-BY") and cell(b, MATERIAL, "DE-NW"),
    )
    bavaria = cell(board, MATERIAL, "DE-BY")
    assert bavaria is not None and bavaria["worst"] == "critical"
    assert bavaria["count"] == 1 and bavaria["partners"] == ["klinik-sued"]
    west = cell(board, MATERIAL, "DE-NW")
    assert west is not None and west["worst"] == "watch"

    freshness = await poll(
        lambda: view(stack, "freshness"),
        lambda f: (
            {p["partner"] for p in f["partners"] if not p["stale"]}
            >= {"klinik-sued", "klinik-west", "pharma-depot"}
        ),
    )
    rows = {p["partner"]: p for p in freshness["partners"]}
    assert rows["silent-partner"]["stale"] is True and rows["silent-partner"]["age_seconds"] is None
    assert rows["klinik-sued"]["age_seconds"] < 120 and rows["klinik-sued"]["region"] == "DE-BY"
    assert freshness["stale_after_seconds"] == 3600

    # the western hospital restocks: its shortage is resolved and leaves the board
    await send_event(producer, stock("klinik-west", MATERIAL, 500, 50, 5))
    board = await poll(lambda: view(stack, "board"), lambda b: not cell(b, MATERIAL, "DE-NW"))
    assert cell(board, MATERIAL, "DE-BY") is not None

    metrics = http(f"{stack.console_url}/metrics")[1]
    assert (metric_value(metrics, "verbund_console_records_total", topic="verbund.alerts") or 0) > 0


async def test_runs_approved_and_rejected_through_the_console(stack, producer) -> None:
    await send_event(producer, stock("klinik-sued", MATERIAL, 10, 50, 10))
    await send_event(producer, stock("pharma-depot", MATERIAL, 900, 100, 5))
    await send_event(producer, need("klinik-sued", MATERIAL, 120))
    await poll(
        lambda: view(stack, "board"),
        lambda b: (c := cell(b, MATERIAL, "DE-BY")) is not None and c["worst"] == "critical",
    )
    anna, ben = stack.tokens["coord-anna"], stack.tokens["coord-ben"]
    status, run = http(
        f"{stack.coordinator_url}/v1/protocols/{PROTOCOL_ID}/runs", "POST", anna, {"reason": "t"}
    )
    assert status == 202 and run["state"] == "awaiting_approval", run
    run_id = run["run_id"]
    runs = await poll(
        lambda: view(stack, "runs"), lambda rs: any(r["run_id"] == run_id for r in rs)
    )
    [row] = [r for r in runs if r["run_id"] == run_id]
    assert row["awaiting"] and row["approvals_needed"] == 1 and row["protocol_id"] == PROTOCOL_ID

    # while it waits, `verbund status` lists it among the running protocols
    out = status_cli(stack)
    assert out.returncode == 0, out.stderr
    assert MATERIAL in out.stdout and "Running protocols:" in out.stdout
    [line] = [x for x in out.stdout.splitlines() if x.startswith(run_id)]
    assert line.split()[1:4] == [PROTOCOL_ID, "awaiting_approval", "0/1"]
    assert "silent-partner" in out.stdout  # stale: never reported

    # approval goes through the console to the coordinator, with the caller's identity
    status, approved = http(f"{stack.console_url}/v1/runs/{run_id}/approve", "POST", ben, {})
    assert status == 200 and approved["approvals"] == ["coord-ben"], approved
    runs = await poll(
        lambda: view(stack, "runs"),
        lambda rs: any(r["run_id"] == run_id and r["state"] == "published" for r in rs),
        timeout=60,
    )
    # a second approval of a run that no longer waits is refused by the coordinator
    status, refused = http(f"{stack.console_url}/v1/runs/{run_id}/approve", "POST", anna, {})
    assert status == 409, refused

    decisions = await poll(
        lambda: view(stack, "decisions"),
        lambda ds: any(d["run_id"] == run_id and d["orders"] for d in ds),
    )
    [decision] = [d for d in decisions if d["run_id"] == run_id]
    assert decision["status"] == "optimal" and decision["revision"] == 1
    [order] = decision["orders"]
    assert order["responder"] == "pharma-depot" and order["state"] == "pending"
    assert order["recipients"] == ["klinik-sued", "pharma-depot"]
    assert order["summary"] == f"120 pcs {MATERIAL} pharma-depot -> klinik-sued"

    # the donor accepts: the order and the run complete
    await send_event(
        producer,
        {
            "type": "OrderAcknowledged",
            "partner_id": "pharma-depot",
            "order_id": order["order_id"],
            "accepted": True,
        },
    )
    decisions = await poll(
        lambda: view(stack, "decisions"),
        lambda ds: any(d["run_id"] == run_id and d["orders"][0]["state"] == "accepted" for d in ds),
    )
    await poll(
        lambda: view(stack, "runs"),
        lambda rs: any(r["run_id"] == run_id and r["state"] == "completed" for r in rs),
    )

    # the next run of the scope is rejected through the console, with a reason
    status, second = http(f"{stack.coordinator_url}/v1/protocols/{PROTOCOL_ID}/runs", "POST", ben)
    assert status == 202 and second["run_id"] != run_id
    status, rejected = http(
        f"{stack.console_url}/v1/runs/{second['run_id']}/reject", "POST", anna, {"reason": "drill"}
    )
    assert status == 200 and rejected["state"] == "rejected", rejected
    await poll(
        lambda: view(stack, "runs"),
        lambda rs: any(r["run_id"] == second["run_id"] and r["state"] == "rejected" for r in rs),
    )
    assert http(f"{stack.console_url}/v1/runs/not-a-run/approve", "POST", anna, {})[0] == 404


def test_status_errors_are_one_line(stack: ConsoleStack) -> None:
    out = status_cli(stack, VERBUND_CONSOLE_URL=f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "is not reachable" in out.stderr, out.stderr
    out = status_cli(stack, VERBUND_COORDINATOR_TOKEN="vbd_wrong")
    assert out.returncode == 2 and "refused the token" in out.stderr, out.stderr
    env = {k: v for k, v in os.environ.items() if k != "VERBUND_COORDINATOR_TOKEN"}
    out = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "status"],
        env={**env, "VERBUND_CONSOLE_URL": stack.console_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "VERBUND_COORDINATOR_TOKEN is not set" in out.stderr
