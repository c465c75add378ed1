"""Trigger-to-decision latency through the live system (broker, ledger, coordinator).

A generated 50 partners x 50 materials alliance is streamed into the ledger as partner
events; then a reallocation protocol (automatic approval) is triggered over the
coordinator's HTTP API again and again. Each latency is measured from the HTTP call to
the DecisionPublished record read back from Kafka; the coordinator's own figure (trigger
to publish) and the solve time are printed next to it. After every decision all orders
are accepted over Kafka, which completes the run and frees the scope for the next one.

    python benchmarks/decision_latency.py [--partners 50] [--materials 50] [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocols.generate import generate_scenario  # noqa: E402
from services.common.broker import EmbeddedBroker, free_port  # noqa: E402
from services.common.kafka import ensure_topics  # noqa: E402
from services.common.topics import DECISIONS, PARTNER_EVENTS, PARTNER_ORDERS  # noqa: E402
from services.gateway.tokens import issue_token  # noqa: E402
from tests.integration.kafka_helpers import TopicCollector  # noqa: E402

PROTOCOL = {
    "id": "latency-reallocation",
    "title": "Reallocation for the latency benchmark",
    "version": 1,
    "owner": "benchmarks",
    "purpose": "Keep essential supply running in a shortage (test).",
    "last_reviewed": datetime.now(UTC).date().isoformat(),
    "review_interval_days": 365,
    "triggers": [{"type": "manual"}],
    "approval": "automatic",
    "optimization": {"kind": "material_reallocation"},
    "response_hours": 1,
}


def events_of(scenario: Any) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    by_partner: dict[str, list[dict[str, Any]]] = {}
    units = {m.id: m.unit.value for m in scenario.materials}
    for p in scenario.positions:
        by_partner.setdefault(p.partner_id, []).append(
            {
                "site_id": p.site_id,
                "material_id": p.material_id,
                "unit": units[p.material_id],
                "on_hand": p.on_hand,
                "safety_stock": p.safety_stock,
                "daily_consumption": p.daily_consumption,
            }
        )
    events = [
        {
            "type": "StockReported",
            "event_id": str(uuid.uuid4()),
            "partner_id": partner,
            "occurred_at": now,
            "positions": positions,
        }
        for partner, positions in by_partner.items()
    ]
    for n in scenario.needs:
        partner = scenario.partner_by_id[n.partner_id]
        events.append(
            {
                "type": "NeedReported",
                "event_id": str(uuid.uuid4()),
                "partner_id": n.partner_id,
                "occurred_at": now,
                "need_id": n.need_id,
                "site_id": n.site_id,
                "material_id": n.material_id,
                "unit": units[n.material_id],
                "quantity": n.quantity,
                "needed_by": n.needed_by.isoformat(),
                "criticality": (n.criticality or partner.criticality).value,
            }
        )
    return events


async def wait_for_ledger(port: int, positions: int, workdir: Path) -> None:
    """Until the ledger holds every position of the instance."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            held = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("verbund_ledger_positions{")
            )
            if held >= positions:
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"the ledger did not take the instance's positions; see {workdir}")


async def accept_all(
    orders: TopicCollector, producer: AIOKafkaProducer, run_id: str, expected: int
) -> None:
    """Every partner that must answer accepts its orders of the run."""
    issued = await orders.wait_for(
        lambda o: o.get("type") == "OrderIssued" and o["run_id"] == run_id and o["must_answer"],
        count=expected,
        timeout=60,
    )
    for order in issued:
        ack = {
            "type": "OrderAcknowledged",
            "event_id": str(uuid.uuid4()),
            "partner_id": order["recipient"],
            "order_id": order["order_id"],
            "accepted": True,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        await producer.send(PARTNER_EVENTS.name, orjson.dumps(ack), key=order["recipient"].encode())
    await producer.flush()


def api(url: str, token: str, method: str, path: str) -> Any:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace, bootstrap: str, workdir: Path) -> None:
    scenario = generate_scenario(
        args.partners, args.materials, seed=7, capacity=False, purchasing=False
    )
    alliance = {
        "name": "latency benchmark",
        "partners": [p.model_dump(mode="json") for p in scenario.partners],
        "agreements": {
            "surplus_sharing": [
                a.model_dump(mode="json") for a in scenario.agreements.surplus_sharing
            ]
        },
    }
    (workdir / "alliance.yaml").write_text(yaml.safe_dump(alliance))
    library = workdir / "protocols"
    library.mkdir()
    (library / "latency.yaml").write_text(yaml.safe_dump(PROTOCOL))
    token = issue_token("coord-bench", workdir / "tokens.yaml")
    port = free_port()
    ledger_metrics = free_port()
    env = {
        **os.environ,
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(workdir / "alliance.yaml"),
        "VERBUND_DATA_DIR": str(workdir / "data"),
        "VERBUND_PROTOCOLS_DIR": str(library),
        "VERBUND_COORDINATOR_TOKENS_FILE": str(workdir / "tokens.yaml"),
        "VERBUND_COORDINATOR_PORT": str(port),
        # --verbose: the coordinator logs each run's phases (sync, snapshot, solve, record,
        # publish) in workdir/coordinator.log
        "VERBUND_LOG_LEVEL": "INFO" if args.verbose else "WARNING",
        "VERBUND_METRICS_PORT": str(ledger_metrics),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", name],
            env=env,
            cwd=ROOT,
            stdout=open(workdir / f"{name}.log", "wb"),  # noqa: SIM115 - the child's log
            stderr=subprocess.STDOUT,
        )
        for name in ("ledger", "coordinator")
    ]
    url = f"http://127.0.0.1:{port}"
    decisions = await TopicCollector(bootstrap, DECISIONS.name).start()
    orders = await TopicCollector(bootstrap, PARTNER_ORDERS.name).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        events = events_of(scenario)
        for event in events:
            await producer.send(
                PARTNER_EVENTS.name, orjson.dumps(event), key=event["partner_id"].encode()
            )
        await producer.flush()
        print(
            f"instance: {len(scenario.partners)} partners, {len(scenario.materials)} materials, "
            f"{len(scenario.positions)} positions, {len(scenario.needs)} needs "
            f"({len(events)} partner events)"
        )
        deadline = time.monotonic() + 120
        while True:  # wait for the coordinator and for the state to reach it
            try:
                status = api(url, token, "GET", "/v1/protocols")
                if status:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"coordinator did not start; see {workdir}")
            await asyncio.sleep(0.5)
        await wait_for_ledger(ledger_metrics, len(scenario.positions), workdir)
        await asyncio.sleep(1)  # the coordinator's replica follows the ledger's changelog
        end_to_end: list[float] = []
        reported: list[float] = []
        solve: list[float] = []
        for index in range(args.runs + 1):
            started = time.perf_counter()
            run = api(url, token, "POST", f"/v1/protocols/{PROTOCOL['id']}/runs")
            if not run["started"]:
                raise SystemExit(f"run {index}: the previous run was still active; see {workdir}")
            run_id = run["run_id"]
            [decision] = await decisions.wait_for(lambda d, r=run_id: d["run_id"] == r, timeout=60)
            elapsed = time.perf_counter() - started
            if not decision["orders"]:
                raise SystemExit(f"run {run_id} decided nothing; see {workdir}")
            if index:  # the first run warms up imports and the solver
                end_to_end.append(elapsed)
                reported.append(decision["trigger_to_decision_seconds"])
                solve.append(decision["solve_seconds"])
                if args.verbose:
                    print(
                        run_id,
                        decision["revision"],
                        decision["orders"],
                        round(elapsed, 3),
                        decision["solve_seconds"],
                    )
            await accept_all(orders, producer, run_id, decision["orders"])
            # the measuring client keeps no history of orders: ~1,800 records per run would
            # grow its heap and its own full garbage collections (measured up to 270 ms)
            # would land inside the next measurement
            orders.records.clear()
            for _ in range(600):
                if api(url, token, "GET", f"/v1/runs/{run_id}")["state"] == "completed":
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit(f"run {run_id} did not complete; see {workdir}")
        print(f"decisions: {len(end_to_end)} runs, {decision['orders']} orders in the last one")
        for name, values in (
            ("end to end (HTTP trigger -> decision on Kafka)", end_to_end),
            ("coordinator trigger -> publish", reported),
            ("snapshot + solve", solve),
        ):
            print(
                f"{name:48s} p50 {percentile(values, 0.5) * 1000:7.1f} ms   "
                f"p99 {percentile(values, 0.99) * 1000:7.1f} ms   "
                f"mean {statistics.mean(values) * 1000:7.1f} ms"
            )
        p99 = percentile(end_to_end, 0.99)
        print(
            f"p99 end to end / 500 ms target: {p99 / 0.5:.2f} (<= 1 meets the target); "
            f"solve share of p50: {percentile(solve, 0.5) / percentile(end_to_end, 0.5):.2f}"
        )
    finally:
        await producer.stop()
        await decisions.stop()
        await orders.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--materials", type=int, default=50)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="verbund-latency-"))
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        asyncio.run(main_async(args, broker.bootstrap, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
