"""The three HTTP apps (gateway, coordinator API, console) with fakes only at the Kafka edge,
one credentials file with a principal per role, and a recorder of AccessRefused events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from protocols.loader import load_library
from schemas.audit import AccessRefused
from services.common.access import RefusalPublisher
from services.common.identity import Role, build_identities, issue, utcnow
from services.common.topics import COMMANDS
from services.console.api import create_app as console_app
from services.console.service import ConsoleService
from services.coordinator.api import create_app as coordinator_app
from services.coordinator.service import CoordinatorService
from services.coordinator.store import RunStore
from services.gateway.app import create_app as gateway_app
from services.gateway.settings import GatewaySettings
from tests.unit.console.test_views import ALLIANCE

OWN_PARTNER = "hosp-a"  # in ALLIANCE
FOREIGN_PARTNER = "hosp-b"
PRINCIPALS: dict[Role, str] = {
    Role.PARTNER: OWN_PARTNER,
    Role.OPERATOR: "ops-olga",
    Role.COORDINATOR: "coord-anna",
    Role.AUDITOR: "audit-otto",
}
FOUR_EYES_PROTOCOL = "joint-purchasing"  # approval: two_coordinators


class FakeProducer:
    """Stands in for aiokafka's producer: ``send`` returns an already acknowledged future."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def stop(self) -> None:
        return None


@dataclass
class RefusalRecorder:
    """The refusal publisher's sink: what would have gone to verbund.commands."""

    records: list[tuple[str, bytes, AccessRefused]] = field(default_factory=list)

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, AccessRefused.model_validate_json(value)))

    def take(self) -> list[AccessRefused]:
        for topic, key, event in self.records:
            assert topic == COMMANDS.name and key == event.principal.encode()
        events = [event for _, _, event in self.records]
        self.records.clear()
        return events


@dataclass
class Setup:
    credentials: Path
    tokens: dict[str, str]  # caller name -> clear token
    refusals: RefusalRecorder
    apps: dict[str, web.Application]
    coordinator: CoordinatorService
    producer: FakeProducer

    def new_run(self) -> str:
        """A fresh run of the four-eyes protocol, awaiting approval."""
        core = self.coordinator.core
        core.active_scopes.clear()  # one active run per scope: let this one start
        run, started, _ = core.trigger(FOUR_EYES_PROTOCOL, "test", time.time())
        assert started
        return run.run_id


def build(tmp: Path) -> Setup:
    credentials = tmp / "credentials.yaml"
    tokens = {role.value: issue(credentials, name, role)[0] for role, name in PRINCIPALS.items()}
    tokens["foreign-partner"] = issue(credentials, FOREIGN_PARTNER, Role.PARTNER)[0]
    tokens["coord-ben"] = issue(credentials, "coord-ben", Role.COORDINATOR)[0]
    tokens["coord-anna-2"] = issue(credentials, "coord-anna", Role.COORDINATOR)[0]
    tokens["expired"] = issue(
        credentials, "coord-eve", Role.COORDINATOR, 1, now=utcnow() - timedelta(days=2)
    )[0]
    identities = build_identities(credentials, reload_interval=0.0)
    refusals = RefusalRecorder()
    producer = FakeProducer()

    settings = GatewaySettings(kafka_bootstrap="127.0.0.1:1", credentials_file=credentials)
    gateway = gateway_app(
        settings,
        producer,  # type: ignore[arg-type]
        identities=identities,
        refusals=RefusalPublisher("gateway", refusals),
    )

    library = load_library(None)
    assert FOUR_EYES_PROTOCOL in library.protocols, library.errors
    service = CoordinatorService(
        "127.0.0.1:1", ALLIANCE, library.protocols, RunStore(tmp / "runs"), tick_seconds=3600
    )
    service.producer = producer  # type: ignore[assignment]
    service._schedule_solve = lambda run_id, requested_at: None  # type: ignore[method-assign]
    coordinator = coordinator_app(service, identities, RefusalPublisher("coordinator", refusals))

    console_service = ConsoleService("127.0.0.1:1", ALLIANCE, 3600)
    console = console_app(
        console_service,
        identities,
        "http://127.0.0.1:1",  # approvals forwarded here fail fast (502): access passed
        keepalive=0.05,
        refusals=RefusalPublisher("console", refusals),
    )
    return Setup(
        credentials,
        tokens,
        refusals,
        {"gateway": gateway, "coordinator": coordinator, "console": console},
        service,
        producer,
    )


@dataclass
class AppClient:
    """One app of a :class:`Setup` under a test client, called as one of its token holders."""

    setup: Setup
    client: TestClient[Any, Any]

    def headers(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.setup.tokens[caller]}"}

    async def get(self, caller: str, path: str) -> Any:
        """The JSON answer of a GET that must succeed."""
        answer = await self.client.get(path, headers=self.headers(caller))
        assert answer.status == 200, (caller, path, answer.status)
        return await answer.json()


def row_of(rows: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """The one row of ``rows`` about run ``run_id``."""
    [row] = [r for r in rows if r["run_id"] == run_id]
    return row
