"""Route policies for every HTTP service, one middleware that enforces them, one way to refuse.

Each service declares ``ROUTE_POLICIES: dict[(method, path), Policy]`` next to its routes
(``path`` is aiohttp's canonical form, e.g. ``/v1/runs/{run_id}``) and installs
:func:`install_access` on its app. For every request the middleware

1. finds the route's policy; a route without one is refused with 500 (fail closed, and
   ``tests/unit/test_access_matrix.py`` fails before that can ship);
2. lets public routes through (health, metrics, the console's static page);
3. authenticates the bearer token: **401** when it is missing, malformed, unknown,
   revoked or expired;
4. checks the role: **403** when the principal's role may not use the endpoint at all,
   decided before anything is looked up, so it says nothing about any resource;
5. for policies with ``own=<param>``: a partner naming another partner's id in the path
   gets **404**, exactly the answer (status and body) for a resource that does not exist.

The refusal rule, in one sentence: *a resource you may not see is answered as one that does
not exist (404), whether it is named in the path (checked here) or found by the handler
(the handler calls :func:`refuse_foreign`, which answers like :func:`not_found`)*. A write
that claims to be about another party (a partner's event naming another partner) is 403:
nothing is looked up, so nothing is revealed.

Every refusal (401, 403, foreign 404) is logged and published as an
:class:`~schemas.audit.AccessRefused` on ``verbund.commands``, keyed by the principal, by
:class:`RefusalPublisher`; the audit service records it. Credentials never appear in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from schemas.audit import AccessRefused
from services.common.identity import (
    ROLES,
    AuthenticationFailed,
    IdentityStore,
    Principal,
    Role,
    bearer_token,
    hash_token_id,
)
from services.common.logging import get_logger
from services.common.topics import COMMANDS

log = get_logger("access")

RouteKey = tuple[str, str]  # (HTTP method, canonical path)
Send = Callable[[str, bytes, bytes], Awaitable[None]]  # topic, key, value
NOT_FOUND_MESSAGE = "not found"


@dataclass(frozen=True)
class Policy:
    """Who may call one endpoint.

    ``roles``: the roles allowed (empty and ``public=False``: nobody). ``own``: a path
    parameter holding a partner id; partner callers may only name their own (others get the
    not-found answer). ``own_in_body``: documents that the handler checks that what the body
    is about belongs to the caller (the gateway's events)."""

    action: str
    roles: frozenset[Role] = frozenset()
    public: bool = False
    own: str | None = None
    own_in_body: bool = False

    def allows(self, role: Role) -> bool:
        return self.public or role in self.roles


def public(action: str) -> Policy:
    return Policy(action, frozenset(ROLES), public=True)


def allow(action: str, *roles: Role, own: str | None = None, own_in_body: bool = False) -> Policy:
    return Policy(action, frozenset(roles), own=own, own_in_body=own_in_body)


def route_key(method: str, canonical: str) -> RouteKey:
    return ("GET" if method == "HEAD" else method, canonical)


def app_routes(app: web.Application) -> set[RouteKey]:
    """Every (method, canonical path) the app serves; HEAD counts as GET."""
    return {
        route_key(route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "*"
    }


class RefusalPublisher:
    """Publishes :class:`AccessRefused` events (one helper for every service).

    ``send`` writes one record; without it (a service with no Kafka producer yet, or a unit
    test that does not care) refusals are only logged. A failing publish never turns a
    refusal into an error: it is logged as ``access_refusal_unpublished``."""

    def __init__(self, service: str, send: Send | None = None, timeout: float = 5.0) -> None:
        self.service = service
        self.send = send
        self.timeout = timeout

    async def publish(
        self, principal: str, role: str, action: str, resource: str, reason: str
    ) -> AccessRefused:
        event = AccessRefused(
            principal=principal[:200] or "anonymous",
            role=role,
            action=action[:200] or "unknown",
            resource=resource[:200] or "/",
            reason=reason[:500] or "refused",
            service=self.service,
            at=datetime.now(UTC),
        )
        log.warning(
            "access_refused",
            principal=event.principal,
            role=role,
            action=event.action,
            resource=event.resource,
            reason=event.reason,
            service=self.service,
        )
        if self.send is not None:
            value = orjson.dumps(event.model_dump(mode="json"))
            try:
                await asyncio.wait_for(
                    self.send(COMMANDS.name, event.principal.encode(), value), self.timeout
                )
            except Exception as exc:  # never let auditing break the answer
                log.error("access_refusal_unpublished", error=repr(exc), service=self.service)
        return event


def producer_send(producer: Any) -> Send:
    """A :data:`Send` over a started aiokafka producer (waits for the acknowledgement)."""

    async def send(topic: str, key: bytes, value: bytes) -> None:
        future = await producer.send(topic, value, key=key)
        await future

    return send


class LazyKafkaSend:
    """A :data:`Send` for a service without a producer of its own (the console): the producer
    starts on the first refusal; :meth:`close` stops it."""

    def __init__(self, bootstrap: str, options: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.options = options  # kafka_client_options(settings)
        self._producer: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        async with self._lock:
            if self._producer is None:
                from services.common.kafka import durable_producer

                producer = durable_producer(self.bootstrap, self.options)
                await producer.start()
                self._producer = producer
        await producer_send(self._producer)(topic, key, value)

    async def close(self) -> None:
        from services.common.kafka import stop_client

        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client(producer)


Renderer = Callable[[web.Request, int, str, str], web.Response]  # request, status, reason, msg


def error_response(status: int, reason: str, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"status": status, "reason": reason, "message": message}),
        status=status,
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="verbund"'} if status == 401 else None,
    )


def json_error(request: web.Request, status: int, reason: str, message: str) -> web.Response:
    """The default rendering of a refusal: ``{"status", "reason", "message"}``."""
    return error_response(status, reason, message)


@dataclass
class AccessControl:
    """One service's access configuration, stored on its app under :data:`ACCESS_KEY`."""

    service: str
    policies: Mapping[RouteKey, Policy]
    identities: IdentityStore
    publisher: RefusalPublisher = field(default_factory=lambda: RefusalPublisher("unknown"))
    render: Renderer = json_error
    reasons: Mapping[int, str] = field(
        default_factory=lambda: {401: "unauthenticated", 403: "forbidden", 404: "not_found"}
    )

    def answer(self, request: web.Request, status: int, message: str) -> web.Response:
        return self.render(request, status, self.reasons.get(status, "refused"), message)


ACCESS_KEY = web.AppKey("access", AccessControl)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
POLICY_KEY = web.RequestKey("policy", Policy)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route (set by the middleware)."""
    return request[PRINCIPAL_KEY]


def not_found(request: web.Request) -> web.Response:
    """The answer for a resource that does not exist (and for one the caller may not see)."""
    return request.app[ACCESS_KEY].answer(request, 404, NOT_FOUND_MESSAGE)


async def audit_refusal(request: web.Request, reason: str) -> None:
    """Publish the refusal of this request (a handler that answers in its own format)."""
    principal = request.get(PRINCIPAL_KEY)
    policy = request.get(POLICY_KEY)
    await request.app[ACCESS_KEY].publisher.publish(
        principal.id if principal else "anonymous",
        principal.role.value if principal else "",
        policy.action if policy else request.method,
        request.path,
        reason,
    )


async def refuse(
    request: web.Request, status: int, reason: str, message: str | None = None
) -> web.Response:
    """Refuse from inside a handler: audit it, then answer ``status`` (401/403/404)."""
    control = request.app[ACCESS_KEY]
    await audit_refusal(request, reason)
    if status == 404:
        return not_found(request)
    return control.answer(request, status, message or reason)


async def refuse_foreign(request: web.Request, reason: str = "foreign resource") -> web.Response:
    """A resource exists but is not the caller's: audited, answered like a missing one."""
    return await refuse(request, 404, reason)


def visible_to(principal: Principal, owners: Iterable[str]) -> bool:
    """Whether a partner-owned resource (owned by or involving ``owners``) is visible:
    partners see only what involves them; other roles are decided by the route policy."""
    return principal.role is not Role.PARTNER or principal.id in set(owners)


def routing_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal of a path or method (404, 405), as JSON like every other
    refusal instead of its plain text; a 405 keeps its ``Allow`` header."""
    allowed = exc.headers.get("Allow", "")
    if exc.status == 405:
        message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        response = error_response(405, "method_not_allowed", message)
        response.headers["Allow"] = allowed
        return response
    if exc.status == 404:
        return error_response(404, "no_such_endpoint", f"no endpoint {request.path}")
    return error_response(exc.status, "bad_request", exc.reason)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is not None:  # no such route / method
        return routing_error(request, match.http_exception)
    control = request.app[ACCESS_KEY]
    resource = match.route.resource
    canonical = resource.canonical if resource is not None else request.path
    policy = control.policies.get(route_key(request.method, canonical))
    if policy is None:
        log.error("route_without_policy", method=request.method, path=canonical)
        return error_response(500, "no_policy", "this endpoint declares no access policy")
    request[POLICY_KEY] = policy
    if policy.public:
        return await handler(request)
    try:
        principal = control.identities.authenticate_header(request.headers.get("Authorization"))
    except AuthenticationFailed as failure:
        who = failure.principal
        await control.publisher.publish(
            who.id if who else _anonymous(request),
            who.role.value if who else "",
            policy.action,
            request.path,
            failure.message,
        )
        return control.answer(request, 401, failure.message)
    request[PRINCIPAL_KEY] = principal
    if not policy.allows(principal.role):
        await control.publisher.publish(
            principal.id,
            principal.role.value,
            policy.action,
            request.path,
            f"role {principal.role.value} may not {policy.action}",
        )
        return control.answer(request, 403, f"role {principal.role.value} may not {policy.action}")
    if (
        policy.own is not None
        and principal.role is Role.PARTNER
        and match.get(policy.own) != principal.id
    ):
        return await refuse_foreign(request, f"{policy.own} is not the caller's own")
    return await handler(request)


def _anonymous(request: web.Request) -> str:
    token = bearer_token(request.headers.get("Authorization"))
    return f"token:{hash_token_id(token)}" if token else "anonymous"


def install_access(app: web.Application, control: AccessControl) -> None:
    """Enforce ``control.policies`` on every route of ``app``."""
    app[ACCESS_KEY] = control
    app.middlewares.append(access_middleware)
