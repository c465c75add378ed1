"""The console's HTTP side: the page, its JSON views, the live stream, forwarded commands.

``GET  /``                               the page (static HTML, JS and CSS, no build step)
``GET  /v1/session``                     who the bearer token belongs to, and what it may do
``GET  /v1/board|aggregates|freshness|runs|decisions|summary``  the views as JSON, each for
                                         the roles of ``views.VIEWS_BY_ROLE`` (403 otherwise)
``GET  /v1/mine``                        a partner's own data and orders (partners only)
``GET  /v1/events/stream``               server-sent events: ``views`` with every view on change
``POST /v1/runs/{id}/approve|reject``    forwarded to the coordinator with the caller's token
``GET  /healthz``, ``GET /metrics``

Everything under ``/v1`` needs a bearer token (401 otherwise); the page keeps it in
sessionStorage and sends it as the Authorization header, also for the stream (read with
``fetch``, so the token never appears in a URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.common.access import (
    ACCESS_KEY,
    AccessControl,
    LazyKafkaSend,
    Policy,
    RefusalPublisher,
    RouteKey,
    allow,
    install_access,
    not_found,
    principal_of,
    public,
)
from services.common.identity import ROLES, AuthenticationFailed, IdentityStore, Role
from services.common.logging import get_logger
from services.common.tokens import TokenStore
from services.console import metrics
from services.console.auth import legacy_identities
from services.console.service import ConsoleService
from services.console.views import views_for_role

STATIC_DIR = Path(__file__).parent / "static"
SERVICE_KEY = web.AppKey("service", ConsoleService)
COORDINATOR_KEY = web.AppKey("coordinator_url", str)
HTTP_KEY = web.AppKey("http", aiohttp.ClientSession)
STREAM_KEY = web.AppKey("stream", dict[str, float])
RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")
VIEW_NAMES = ("board", "aggregates", "freshness", "runs", "decisions", "summary", "mine")
SERVICE = "console"

log = get_logger("console")


def _view_roles(name: str) -> tuple[Role, ...]:
    return tuple(role for role in ROLES if name in views_for_role(role))


# Who may call what (services/common/access.py); the views' roles come from
# views.VIEWS_BY_ROLE (need-to-know), and the access-matrix test checks every route is here.
ROUTE_POLICIES: dict[RouteKey, Policy] = {
    ("GET", "/"): public("page"),
    ("GET", "/static"): public("static"),
    ("GET", "/healthz"): public("health"),
    ("GET", "/metrics"): public("metrics"),
    ("GET", "/v1/session"): allow("session", *ROLES),
    **{("GET", f"/v1/{name}"): allow(f"view_{name}", *_view_roles(name)) for name in VIEW_NAMES},
    # each role's stream carries only that role's views (ConsoleService.views_for)
    ("GET", "/v1/events/stream"): allow("stream", *ROLES),
    ("POST", "/v1/runs/{run_id}/{action}"): allow("decide_run", Role.COORDINATOR),
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, reason: str, message: str) -> web.Response:
    return _json({"status": status, "reason": reason, "message": message}, status)


def _view(name: str) -> Callable[[web.Request], Awaitable[Any]]:
    """A JSON view, for the roles that may see it (need-to-know, ``views.VIEWS_BY_ROLE``)."""

    async def handler(request: web.Request) -> web.Response:
        principal = principal_of(request)  # role checked by ROUTE_POLICIES
        return _json(request.app[SERVICE_KEY].view(name, principal.role, principal.name))

    return handler


async def session(request: web.Request) -> web.Response:
    return _json(principal_of(request).view())


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every view at once whenever something changed (at most about four
    times a second), and at least every ``keepalive`` seconds so freshness ages move. The
    token is checked again before every event: a revoked or expired one ends the stream
    (within ``keepalive`` seconds)."""
    principal = principal_of(request)
    identities = request.app[ACCESS_KEY].identities
    header = request.headers.get("Authorization")
    service = request.app[SERVICE_KEY]
    options = request.app[STREAM_KEY]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    metrics.STREAM_CLIENTS.inc()
    try:
        version = -1
        while True:
            try:
                identities.authenticate_header(header)
            except AuthenticationFailed as failure:
                log.info("stream_closed", principal=principal.id, reason=failure.message)
                break
            version = service.version
            payload = orjson.dumps(service.views_for(principal.role, principal.name))
            await response.write(b"event: views\ndata: " + payload + b"\n\n")
            await service.changed(version, options["keepalive"])
            await asyncio.sleep(options["throttle"])
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        metrics.STREAM_CLIENTS.dec()
    return response


async def forward(request: web.Request) -> web.Response:
    """Approve or reject a run: the coordinator decides, with the caller's own token (so its
    four-eyes rule sees the real principal)."""
    action = request.match_info["action"]
    run_id = request.match_info["run_id"]
    if not RUN_ID.match(run_id):
        return not_found(request)
    body = await request.read() if request.can_read_body else b"{}"
    url = f"{request.app[COORDINATOR_KEY].rstrip('/')}/v1/runs/{run_id}/{action}"
    try:
        async with request.app[HTTP_KEY].post(
            url,
            data=body or b"{}",
            headers={
                "Authorization": request.headers["Authorization"],
                "Content-Type": "application/json",
            },
        ) as answer:
            payload = await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        metrics.FORWARDED.labels(action, "unreachable").inc()
        log.warning("coordinator_unreachable", url=url, error=repr(exc))
        return _error(502, "coordinator_unreachable", f"coordinator not reachable: {exc!r}")
    metrics.FORWARDED.labels(action, str(status)).inc()
    log.info("command_forwarded", action=action, run_id=run_id, status=status)
    return web.Response(body=payload, status=status, content_type="application/json")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    ready = request.app[SERVICE_KEY].ready.is_set()
    return _json({"ready": ready}, 200 if ready else 503)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def create_app(
    service: ConsoleService,
    identities: IdentityStore | TokenStore,
    coordinator_url: str,
    keepalive: float = 5.0,
    throttle: float = 0.25,
    role_tokens: dict[str, TokenStore] | None = None,
    refusals: RefusalPublisher | None = None,
) -> web.Application:
    """The console app. ``identities``: the identity store, or (older callers) the legacy
    coordinator tokens plus ``role_tokens`` {role: tokens}. Refusals are published on the
    service's broker unless ``refusals`` is given."""
    if isinstance(identities, TokenStore):
        identities = legacy_identities(identities, role_tokens)
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app[COORDINATOR_KEY] = coordinator_url
    app[STREAM_KEY] = {"keepalive": keepalive, "throttle": throttle}
    lazy_send = (
        LazyKafkaSend(service.bootstrap, service.kafka_options) if refusals is None else None
    )
    install_access(
        app,
        AccessControl(
            SERVICE, ROUTE_POLICIES, identities, refusals or RefusalPublisher(SERVICE, lazy_send)
        ),
    )

    async def http_client(app: web.Application) -> Any:
        app[HTTP_KEY] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        yield
        with contextlib.suppress(Exception):
            await app[HTTP_KEY].close()
        if lazy_send is not None:
            with contextlib.suppress(Exception):
                await lazy_send.close()

    app.cleanup_ctx.append(http_client)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/healthz", health),
            web.get("/metrics", prometheus),
            web.get("/v1/session", session),
            *(web.get(f"/v1/{name}", _view(name)) for name in VIEW_NAMES),
            web.get("/v1/events/stream", stream),
            web.post(r"/v1/runs/{run_id}/{action:approve|reject}", forward),
            web.static("/static", STATIC_DIR, append_version=False),
        ]
    )
    return app
