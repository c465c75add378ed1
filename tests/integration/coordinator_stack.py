"""A real ledger + coordinator pair on the session's embedded broker, and the ways tests talk
to it: the coordinator's HTTP API and partner events on Kafka."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer

from services.common.broker import free_port
from services.common.topics import PARTNER_EVENTS
from services.gateway.tokens import issue_token
from tests.integration.kafka_helpers import ServiceProcess, dumps


@dataclass
class CoordinatorStack:
    url: str
    env: dict[str, str]
    directory: Path
    tokens: dict[str, str]
    ledger: ServiceProcess
    coordinator: ServiceProcess
    extra: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("coordinator not ready: " + self.coordinator.log_text()[-3000:])

    def restart_coordinator(self) -> None:
        self.coordinator.stop()
        self.coordinator.start()
        self.wait_ready()

    def stop(self) -> None:
        self.coordinator.stop()
        self.ledger.stop()


def start_stack(
    bootstrap: str,
    directory: Path,
    alliance: dict[str, Any],
    protocols: dict[str, dict[str, Any] | str],
    coordinators: tuple[str, ...] = ("coord-anna", "coord-ben"),
) -> CoordinatorStack:
    """Write the alliance, the protocol files (a str is written as is: a broken file) and
    coordinator tokens, then start `verbund ledger` and `verbund coordinator`."""
    (directory / "alliance.yaml").write_text(yaml.safe_dump(alliance))
    library = directory / "protocols"
    library.mkdir()
    for name, content in protocols.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        (library / f"{name}.yaml").write_text(text)
    token_file = directory / "coordinator-tokens.yaml"
    tokens = {name: issue_token(name, token_file) for name in coordinators}
    port = free_port()
    env = {
        "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
        "VERBUND_ALLIANCE_FILE": str(directory / "alliance.yaml"),
        "VERBUND_DATA_DIR": str(directory / "data"),
        "VERBUND_GROUP_ID": f"ledger-e2e-{uuid.uuid4().hex[:8]}",
        "VERBUND_KAFKA_SESSION_TIMEOUT": "6",
        "VERBUND_PROTOCOLS_DIR": str(library),
        "VERBUND_COORDINATOR_TOKENS_FILE": str(token_file),
        "VERBUND_COORDINATOR_PORT": str(port),
        "VERBUND_LOG_LEVEL": "DEBUG",
    }
    stack = CoordinatorStack(
        url=f"http://127.0.0.1:{port}",
        env=env,
        directory=directory,
        tokens=tokens,
        ledger=ServiceProcess(["ledger"], env, directory / "ledger.log").start(),
        coordinator=ServiceProcess(["coordinator"], env, directory / "coordinator.log").start(),
    )
    try:
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


async def partner_event(
    producer: AIOKafkaProducer, event: dict[str, Any], at: datetime | None = None
) -> str:
    """Send a partner event (envelope filled in) keyed by its partner; returns its event id."""
    event = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": (at or datetime.now(UTC).replace(microsecond=0)).isoformat(),
        **event,
    }
    await producer.send_and_wait(
        PARTNER_EVENTS.name, dumps(event), key=event["partner_id"].encode()
    )
    return str(event["event_id"])
