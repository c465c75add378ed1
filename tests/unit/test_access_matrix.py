"""The access-control matrix, generated from the route tables.

For every route each HTTP app serves (read from its aiohttp router, not from the table), every
caller (no token, a bogus token, an expired token, each role) and, where the route is about a
partner, the caller's own partner and a foreign one: the answer is the one the route's
policy dictates, and every refusal is published as AccessRefused. A route without a declared
policy, or a policy without a route, fails :func:`test_every_route_declares_a_policy`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.common.access import (
    AccessControl,
    Policy,
    RefusalPublisher,
    allow,
    app_routes,
    install_access,
    not_found,
    public,
    route_key,
)
from services.common.identity import ROLES, Role, build_identities
from services.console.api import ROUTE_POLICIES as CONSOLE_POLICIES
from services.coordinator.api import ROUTE_POLICIES as COORDINATOR_POLICIES
from services.gateway.app import ROUTE_POLICIES as GATEWAY_POLICIES
from tests.unit.access_apps import (
    FOREIGN_PARTNER,
    FOUR_EYES_PROTOCOL,
    OWN_PARTNER,
    PRINCIPALS,
    RefusalRecorder,
    Setup,
    build,
)

POLICIES: dict[str, dict[tuple[str, str], Policy]] = {
    "gateway": GATEWAY_POLICIES,
    "coordinator": COORDINATOR_POLICIES,
    "console": CONSOLE_POLICIES,
}
# callers: no Authorization header, a token nobody issued, an expired one, then each role
CALLERS: tuple[str, ...] = ("anonymous", "bogus", "expired", *(r.value for r in ROLES))


def need_event(partner: str) -> dict[str, Any]:
    return {
        "type": "NeedReported",
        "event_id": f"evt-{uuid.uuid4()}",
        "partner_id": partner,
        "occurred_at": "2026-11-22T08:00:00Z",
        "need_id": "need-1",
        "site_id": "s1",
        "material_id": "NACL-500ML",
        "unit": "pcs",
        "quantity": 40.0,
        "needed_by": "2026-11-25",
        "criticality": "hospital",
    }


# Path parameter values by name (a route with a parameter not listed here fails the test:
# add a sample). Partner-id parameters get the own or the foreign partner.
def _param(setup: Setup, name: str, partner: str) -> str:
    samples: dict[str, Callable[[], str]] = {
        "run_id": setup.new_run,
        "protocol_id": lambda: FOUR_EYES_PROTOCOL,
        "action": lambda: "approve",
        "partner_id": lambda: partner,
        "supplier_id": lambda: "supplier-x",
        "material_id": lambda: "MASK-FFP2",
    }
    if name not in samples:
        pytest.fail(f"no sample value for path parameter {{{name}}}; add one to _param")
    return samples[name]()


# Request bodies for routes whose policy checks ownership in the body (own_in_body).
BODIES: dict[tuple[str, str], Callable[[str], Any]] = {
    ("POST", "/v1/events"): need_event,
}
STATIC_FILES = {"/static": "/static/app.js"}


def _cases() -> list[tuple[str, tuple[str, str], str, str]]:
    cases = []
    for service, table in POLICIES.items():
        for key, policy in sorted(table.items()):
            scopes = ("own", "foreign") if policy.own or policy.own_in_body else ("own",)
            for caller in CALLERS:
                for scope in scopes:
                    cases.append((service, key, caller, scope))
    return cases


def expected_status(policy: Policy, caller: str, scope: str) -> int | None:
    """The refusal the policy dictates (``None``: allowed)."""
    if policy.public:
        return None
    if caller in ("anonymous", "bogus", "expired"):
        return 401
    role = Role(caller)
    if role not in policy.roles:
        return 403
    if scope == "foreign" and role is Role.PARTNER:
        return 404 if policy.own else 403
    return None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return build(tmp_path_factory.mktemp("access"))


@pytest.fixture(scope="module")
async def clients(setup: Setup) -> Any:
    clients = {name: TestClient(TestServer(app)) for name, app in setup.apps.items()}
    for client in clients.values():
        await client.start_server()
    yield clients
    for client in clients.values():
        await client.close()


def test_every_route_declares_a_policy(setup: Setup) -> None:
    for service, app in setup.apps.items():
        routes = app_routes(app)
        missing = routes - POLICIES[service].keys()
        assert not missing, f"{service}: routes without an access policy: {sorted(missing)}"
        stale = POLICIES[service].keys() - routes
        assert not stale, f"{service}: policies for routes that do not exist: {sorted(stale)}"


def test_every_policy_names_known_roles_and_partners_only_where_meant() -> None:
    for table in POLICIES.values():
        for key, policy in table.items():
            assert policy.public or policy.roles, f"{key}: nobody may call it"
            assert policy.roles <= set(ROLES)
    # partners: the gateway's events (own only) and their own console views, nothing else
    for service, table in POLICIES.items():
        for key, policy in table.items():
            if Role.PARTNER in policy.roles and not policy.public:
                assert (service, key) in {
                    ("gateway", ("POST", "/v1/events")),
                    ("console", ("GET", "/v1/session")),
                    ("console", ("GET", "/v1/mine")),
                    ("console", ("GET", "/v1/events/stream")),
                }, (service, key)


@pytest.mark.parametrize(
    ("service", "key", "caller", "scope"),
    _cases(),
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
async def test_access_matrix(
    setup: Setup, clients: Any, service: str, key: tuple[str, str], caller: str, scope: str
) -> None:
    method, canonical = key
    policy = POLICIES[service][key]
    partner = OWN_PARTNER if scope == "own" else FOREIGN_PARTNER
    if caller == Role.PARTNER.value and scope == "own":
        assert PRINCIPALS[Role.PARTNER] == partner
    path = STATIC_FILES.get(canonical, canonical)
    for name in _params(canonical):
        path = path.replace("{" + name + "}", _param(setup, name, partner))
    headers = {"X-Test": "matrix"}
    if caller == "bogus":
        headers["Authorization"] = "Bearer vbd_not-a-token"
    elif caller != "anonymous":
        headers["Authorization"] = f"Bearer {setup.tokens[caller]}"
    body = BODIES[key](partner) if key in BODIES else None
    if policy.own_in_body:
        assert key in BODIES, f"{key}: checks ownership in the body; add a body to BODIES"
    setup.refusals.take()
    client: TestClient[Any, Any] = clients[service]
    answer = await client.request(
        method,
        path,
        data=orjson.dumps(body) if body is not None else None,
        headers={**headers, "Content-Type": "application/json"},
    )
    status = answer.status
    text = (await asyncio.wait_for(answer.content.read(2000), 5)).decode(errors="replace")
    answer.close()
    refused = setup.refusals.take()
    want = expected_status(policy, caller, scope)
    if want is None:
        assert status not in (401, 403, 500), (status, text)
        assert not refused, refused
        return
    assert status == want, (status, text)
    assert len(refused) == 1, refused
    event = refused[0]
    assert event.service == service and event.action == policy.action
    assert "vbd_" not in event.model_dump_json()  # never the credential
    if caller in PRINCIPALS_BY_CALLER:
        assert event.principal == PRINCIPALS_BY_CALLER[caller]
        assert event.role == caller
    elif caller == "expired":
        assert event.principal == "coord-eve" and "expired" in event.reason
    elif caller == "bogus":
        assert event.principal.startswith("token:")
    else:
        assert event.principal == "anonymous"


PRINCIPALS_BY_CALLER = {role.value: name for role, name in PRINCIPALS.items()}


def _params(canonical: str) -> list[str]:
    import re

    return re.findall(r"\{([^}:]+)(?::[^}]*)?\}", canonical)


# -- the mechanism itself ---------------------------------------------------------------------


def _tiny_app(tmp: Path, recorder: RefusalRecorder) -> tuple[web.Application, dict[str, str]]:
    from services.common.identity import issue

    credentials = tmp / "credentials.yaml"
    tokens = {
        "own": issue(credentials, OWN_PARTNER, Role.PARTNER)[0],
        "coordinator": issue(credentials, "coord-anna", Role.COORDINATOR)[0],
    }
    orders = {OWN_PARTNER: ["o-1"], FOREIGN_PARTNER: ["o-2"]}

    async def partner_orders(request: web.Request) -> web.Response:
        partner = request.match_info["partner_id"]
        if partner not in orders:
            return not_found(request)
        return web.json_response(orders[partner])

    async def unguarded(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    app = web.Application()
    app.router.add_get("/v1/partners/{partner_id}/orders", partner_orders)
    app.router.add_get("/v1/health", unguarded)
    app.router.add_get("/v1/forgotten", unguarded)  # no policy declared
    policies = {
        ("GET", "/v1/partners/{partner_id}/orders"): allow(
            "partner_orders", Role.PARTNER, Role.COORDINATOR, own="partner_id"
        ),
        ("GET", "/v1/health"): public("health"),
    }
    install_access(
        app,
        AccessControl(
            "console",
            policies,
            build_identities(credentials),
            RefusalPublisher("console", recorder),
        ),
    )
    return app, tokens


async def test_foreign_resource_answers_exactly_like_a_missing_one(tmp_path: Path) -> None:
    recorder = RefusalRecorder()
    app, tokens = _tiny_app(tmp_path, recorder)
    async with TestClient(TestServer(app)) as client:
        own = {"Authorization": f"Bearer {tokens['own']}"}

        async def get(path: str, headers: dict[str, str]) -> tuple[int, bytes]:
            answer = await client.get(path, headers=headers)
            return answer.status, await answer.read()

        assert await get(f"/v1/partners/{OWN_PARTNER}/orders", own) == (200, b'["o-1"]')
        foreign = await get(f"/v1/partners/{FOREIGN_PARTNER}/orders", own)
        missing = await get("/v1/partners/nobody-here/orders", own)
        assert foreign[0] == 404 and foreign == missing
        coordinator = {"Authorization": f"Bearer {tokens['coordinator']}"}
        missing_for_coordinator = await get("/v1/partners/nobody-here/orders", coordinator)
        assert missing_for_coordinator == missing  # the same answer for every caller
        assert (await get(f"/v1/partners/{FOREIGN_PARTNER}/orders", coordinator))[0] == 200
        # a partner naming any id but its own is refused (and audited) before the lookup;
        # a coordinator's lookup of a missing partner is no refusal
        events = recorder.take()
        assert [(e.principal, e.action, e.resource) for e in events] == [
            (OWN_PARTNER, "partner_orders", f"/v1/partners/{FOREIGN_PARTNER}/orders"),
            (OWN_PARTNER, "partner_orders", "/v1/partners/nobody-here/orders"),
        ]


async def test_a_route_without_policy_is_refused_even_with_a_token(tmp_path: Path) -> None:
    recorder = RefusalRecorder()
    app, tokens = _tiny_app(tmp_path, recorder)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get(
            "/v1/forgotten", headers={"Authorization": f"Bearer {tokens['coordinator']}"}
        )
        assert answer.status == 500 and "secret" not in await answer.text()
        assert (await client.get("/v1/health")).status == 200
        assert (await client.get("/v1/nothing")).status == 404  # aiohttp's own answer
    assert route_key("HEAD", "/v1/health") == ("GET", "/v1/health")
    assert ("GET", "/v1/forgotten") in app_routes(app)


def test_refusals_leave_no_credential_in_the_log_and_survive_a_broken_broker() -> None:
    async def broken(topic: str, key: bytes, value: bytes) -> None:
        raise OSError("broker down")

    publisher = RefusalPublisher("gateway", broken, timeout=0.5)
    event = asyncio.run(
        publisher.publish("anonymous", "", "post_events", "/v1/events", "unknown token")
    )
    assert event.principal == "anonymous" and event.service == "gateway"


def test_commands_that_change_runs_are_for_coordinators_only() -> None:
    """Pinned, not derived: widening these to another role must be a deliberate test change."""
    pinned = {"trigger_protocol", "approve_run", "reject_run", "decide_run"}
    seen = set()
    for table in POLICIES.values():
        for key, policy in table.items():
            if policy.action in pinned:
                seen.add(policy.action)
                assert policy.roles == {Role.COORDINATOR} and not policy.public, key
    assert seen == pinned
