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

from services.common.logging import get_logger
from services.console import metrics
from services.console.auth import Principal, Unauthenticated, authenticate
from services.console.service import ConsoleService
from services.console.views import views_for_role
from services.gateway.tokens import TokenStore

STATIC_DIR = Path(__file__).parent / "static"
SERVICE_KEY = web.AppKey("service", ConsoleService)
TOKENS_KEY = web.AppKey("tokens", TokenStore)
ROLE_TOKENS_KEY = web.AppKey("role_tokens", dict[str, TokenStore])
COORDINATOR_KEY = web.AppKey("coordinator_url", str)
HTTP_KEY = web.AppKey("http", aiohttp.ClientSession)
STREAM_KEY = web.AppKey("stream", dict[str, float])
RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")

log = get_logger("console")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, reason: str, message: str) -> web.Response:
    return _json({"status": status, "reason": reason, "message": message}, status)


def principal_of(request: web.Request, permission: str = "view") -> Principal:
    """The caller, allowed ``permission``; 401 without a valid token, 403 without the right."""
    try:
        principal = authenticate(
            request.headers.get("Authorization"),
            request.app[TOKENS_KEY],
            request.app[ROLE_TOKENS_KEY],
        )
    except Unauthenticated as exc:
        raise web.HTTPUnauthorized(
            body=orjson.dumps({"status": 401, "reason": "unauthenticated", "message": str(exc)}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="verbund-console"'},
        ) from exc
    if not principal.may(permission):
        raise web.HTTPForbidden(
            body=orjson.dumps(
                {"status": 403, "reason": "forbidden", "message": f"{permission} not allowed"}
            ),
            content_type="application/json",
        )
    return principal


def _forbidden(message: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(
        body=orjson.dumps({"status": 403, "reason": "forbidden", "message": message}),
        content_type="application/json",
    )


def _view(name: str) -> Callable[[web.Request], Awaitable[Any]]:
    """A JSON view, for the roles that may see it (need-to-know, ``views.VIEWS_BY_ROLE``)."""

    async def handler(request: web.Request) -> web.Response:
        principal = principal_of(request)
        if name not in views_for_role(principal.role):
            raise _forbidden(f"{name} not allowed")
        return _json(request.app[SERVICE_KEY].view(name, principal.role, principal.name))

    return handler


async def session(request: web.Request) -> web.Response:
    return _json(principal_of(request).view())


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: every view at once whenever something changed (at most about four
    times a second), and at least every ``keepalive`` seconds so freshness ages move."""
    principal = principal_of(request)
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
    principal_of(request, "approve")
    run_id = request.match_info["run_id"]
    if not RUN_ID.match(run_id):
        return _error(404, "not_found", "no such run")
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
    tokens: TokenStore,
    coordinator_url: str,
    keepalive: float = 5.0,
    throttle: float = 0.25,
    role_tokens: dict[str, TokenStore] | None = None,
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app[TOKENS_KEY] = tokens
    app[ROLE_TOKENS_KEY] = dict(role_tokens or {})
    app[COORDINATOR_KEY] = coordinator_url
    app[STREAM_KEY] = {"keepalive": keepalive, "throttle": throttle}

    async def http_client(app: web.Application) -> Any:
        app[HTTP_KEY] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        yield
        with contextlib.suppress(Exception):
            await app[HTTP_KEY].close()

    app.cleanup_ctx.append(http_client)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/healthz", health),
            web.get("/metrics", prometheus),
            web.get("/v1/session", session),
            *(
                web.get(f"/v1/{name}", _view(name))
                for name in ("board", "aggregates", "freshness", "runs", "decisions", "summary")
            ),
            web.get("/v1/mine", _view("mine")),
            web.get("/v1/events/stream", stream),
            web.post(r"/v1/runs/{run_id}/{action:approve|reject}", forward),
            web.static("/static", STATIC_DIR, append_version=False),
        ]
    )
    return app
