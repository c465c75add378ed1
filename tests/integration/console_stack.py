"""Broker + ledger + coordinator + console as real processes, for the console's integration and
browser tests.

Each stack has its own embedded broker: the console reads every topic from the beginning and
these tests publish runs and orders, so sharing the session broker would leak them into other
tests that read whole topics (and theirs into these)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import ensure_topics
from services.common.topics import PARTNER_EVENTS
from services.gateway.tokens import issue_token
from tests.integration.kafka_helpers import ServiceProcess, dumps


def _site(lat: float, lon: float) -> list[dict[str, Any]]:
    return [{"id": "s1", "name": "Main", "latitude": lat, "longitude": lon}]


def alliance() -> dict[str, Any]:
    def partner(pid: str, sector: str, region: str, crit: str, lat: float, lon: float) -> dict:
        return {
            "id": pid,
            "name": pid.replace("-", " ").title(),
            "sector": sector,
            "region": region,
            "criticality": crit,
            "sites": _site(lat, lon),
        }

    return {
        "name": "Console test alliance",
        "partners": [
            partner("klinik-sued", "hospital", "DE-BY", "hospital", 48.1, 11.6),
            partner("klinik-west", "hospital", "DE-NW", "hospital", 51.2, 6.8),
            partner("pharma-depot", "pharma", "DE-BY", "normal", 48.2, 11.5),
            partner("silent-partner", "pharma", "DE-HE", "normal", 50.1, 8.7),
        ],
        "agreements": {"surplus_sharing": [{"partner_id": "pharma-depot", "share": 0.8}]},
    }


def protocol(protocol_id: str, material: str) -> dict[str, Any]:
    return {
        "id": protocol_id,
        "title": f"Reallocation of {material} (one coordinator approves)",
        "version": 1,
        "owner": "tests",
        "purpose": "Keep essential supply running in a shortage (test).",
        "description": "Hospitals in shortage get stock from partners with surplus.",
        "last_reviewed": datetime.now(UTC).date().isoformat(),
        "review_interval_days": 90,
        "scope": {"materials": [material]},
        "triggers": [{"type": "manual"}],
        "approval": "one_coordinator",
        "optimization": {"kind": "material_reallocation"},
        "response_hours": 1,
    }


@dataclass
class ConsoleStack:
    bootstrap: str
    console_url: str
    coordinator_url: str
    tokens: dict[str, str]
    env: dict[str, str]
    directory: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{proc.log_text()[-3000:]}" for name, proc in self.processes.items()
        )


def http(
    url: str, method: str = "GET", token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def _wait_healthy(url: str, proc: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive:
            raise AssertionError(f"{proc.command} exited: {proc.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not healthy within {timeout}s: {proc.log_text()[-3000:]}")


@contextmanager
def console_stack(directory: Path, protocols: dict[str, dict[str, Any]]) -> Iterator[ConsoleStack]:
    """A broker and ledger, coordinator (with ``protocols``) and console processes."""
    with EmbeddedBroker(log_path=directory / "broker.log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        with _services(broker.bootstrap, directory, protocols) as stack:
            yield stack


@contextmanager
def _services(
    bootstrap: str, directory: Path, protocols: dict[str, dict[str, Any]]
) -> Iterator[ConsoleStack]:
    (directory / "alliance.yaml").write_text(yaml.safe_dump(alliance()))
    library = directory / "protocols"
    library.mkdir()
    for name, spec in protocols.items():
        (library / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    tokens_file = directory / "coordinator-tokens.yaml"
    tokens = {name: issue_token(name, tokens_file) for name in ("coord-anna", "coord-ben")}
    # partners sign in to the console with their gateway token (own data only)
    partner_tokens = directory / "partner-tokens.yaml"
    tokens |= {pid: issue_token(pid, partner_tokens) for pid in ("klinik-sued", "pharma-depot")}
    coordinator_port, console_port = free_port(), free_port()
    coordinator_url = f"http://127.0.0.1:{coordinator_port}"
    console_url = f"http://127.0.0.1:{console_port}"
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(directory / "alliance.yaml"),
        "VERBUND_DATA_DIR": str(directory / "data"),
        "VERBUND_GROUP_ID": f"ledger-console-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
        "VERBUND_PROTOCOLS_DIR": str(library),
        "VERBUND_COORDINATOR_TOKENS_FILE": str(tokens_file),
        "VERBUND_GATEWAY_TOKENS_FILE": str(partner_tokens),
        "VERBUND_COORDINATOR_PORT": str(coordinator_port),
        "VERBUND_COORDINATOR_URL": coordinator_url,
        "VERBUND_CONSOLE_PORT": str(console_port),
        "VERBUND_CONSOLE_STALE_AFTER_SECONDS": "3600",
    }
    stack = ConsoleStack(bootstrap, console_url, coordinator_url, tokens, env, directory)
    try:
        for name in ("ledger", "coordinator", "console"):
            stack.processes[name] = ServiceProcess([name], env, directory / f"{name}.log").start()
        _wait_healthy(coordinator_url, stack.processes["coordinator"])
        _wait_healthy(console_url, stack.processes["console"])
        yield stack
    finally:
        for proc in reversed(list(stack.processes.values())):
            proc.stop()


async def send_event(producer: AIOKafkaProducer, event: dict[str, Any]) -> dict[str, Any]:
    event = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        **event,
    }
    await producer.send_and_wait(
        PARTNER_EVENTS.name, dumps(event), key=event["partner_id"].encode()
    )
    return event


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


def need(partner: str, material: str, quantity: float) -> dict[str, Any]:
    return {
        "type": "NeedReported",
        "partner_id": partner,
        "need_id": f"need-{material.lower()}",
        "site_id": "s1",
        "material_id": material,
        "unit": "pcs",
        "quantity": quantity,
        "needed_by": (datetime.now(UTC).date() + timedelta(days=5)).isoformat(),
        "criticality": "hospital",
    }


async def poll(fetch: Any, predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Call ``fetch()`` until ``predicate(value)`` holds; the value, or AssertionError."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}"[:3000])
