"""The coordinator's HTTP API for crisis coordinators (bearer tokens, JSON).

``GET  /v1/protocols``                  the library with review status
``POST /v1/protocols/{id}/runs``        trigger a run (202; 200 with the active run of the scope)
``GET  /v1/runs``, ``GET /v1/runs/{id}`` runs, and one run with its decision and orders
``POST /v1/runs/{id}/approve|reject``   approval gate (four eyes where the protocol says so)
``GET  /healthz``, ``GET /metrics``
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.coordinator import metrics
from services.coordinator.core import CommandRefused, Run
from services.coordinator.service import CoordinatorService
from services.gateway.tokens import TokenStore, hash_token

SERVICE_KEY = web.AppKey("service", CoordinatorService)
TOKENS_KEY = web.AppKey("tokens", TokenStore)


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"status": status, "reason": reason, "message": message}, status=status
    )


def _principal(request: web.Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text='{"status": 401, "reason": "unauthenticated", "message": "bearer token required"}',
            content_type="application/json",
        )
    principal = request.app[TOKENS_KEY].partner_for(token.strip())
    if principal is None:
        raise web.HTTPUnauthorized(
            text='{"status": 401, "reason": "unauthenticated", "message": "unknown token"}',
            content_type="application/json",
        )
    return principal, hash_token(token.strip()).split(":", 1)[-1][:12]


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=f'{{"status": 400, "reason": "invalid_json", "message": "{exc}"}}',
            content_type="application/json",
        ) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"status": 400, "reason": "invalid_body", "message": "expected a JSON object"}',
            content_type="application/json",
        )
    return body


def run_view(run: Run, detail: bool = False) -> dict[str, Any]:
    view = run.summary()
    view["triggered_at"] = datetime.fromtimestamp(run.triggered_at, UTC).isoformat()
    if detail and run.decision is not None:
        decision = run.decision
        view["decision"] = {
            "status": decision.status.value,
            "proven_optimal": decision.proven_optimal,
            "explanation": decision.explanation,
            "requested_by_tier": decision.requested_by_tier,
            "unmet_by_tier": decision.unmet_by_tier,
            "total_cost": decision.total_cost,
        }
        view["order_list"] = [
            {
                "order_id": o.order_id,
                "revision": o.revision,
                "kind": o.kind,
                "responder": o.responder,
                "informed": list(o.informed),
                "state": o.state.value,
                "order": o.payload,
            }
            for o in run.orders.values()
        ]
    return view


async def list_protocols(request: web.Request) -> web.Response:
    _principal(request)
    today = datetime.now(UTC).date()
    service = request.app[SERVICE_KEY]
    return web.json_response(
        [
            {
                "id": p.id,
                "title": p.title,
                "version": p.version,
                "kind": p.kind,
                "approval": p.approval.value,
                "owner": p.owner,
                "last_reviewed": p.last_reviewed.isoformat(),
                "review_due": p.review_due.isoformat(),
                "review_overdue": p.review_overdue(today),
            }
            for p in sorted(service.core.protocols.values(), key=lambda p: p.id)
        ]
    )


async def trigger_run(request: web.Request) -> web.Response:
    principal, _ = _principal(request)
    body = await _json_body(request)
    reason = str(body.get("reason", ""))[:500] or f"manual run by {principal}"
    service = request.app[SERVICE_KEY]
    try:
        run, started = await service.trigger(request.match_info["protocol_id"], principal, reason)
    except CommandRefused as exc:
        metrics.COMMANDS_REFUSED.labels("unknown_protocol").inc()
        return _error(exc.status, "refused", exc.message)
    view = run_view(run) | {"started": started}
    return web.json_response(view, status=202 if started else 200)


async def list_runs(request: web.Request) -> web.Response:
    _principal(request)
    runs = request.app[SERVICE_KEY].core.runs.values()
    return web.json_response([run_view(r) for r in sorted(runs, key=lambda r: -r.triggered_at)])


async def get_run(request: web.Request) -> web.Response:
    _principal(request)
    run = request.app[SERVICE_KEY].core.runs.get(request.match_info["run_id"])
    if run is None:
        return _error(404, "not_found", "no such run")
    return web.json_response(run_view(run, detail=True))


async def approve_run(request: web.Request) -> web.Response:
    principal, token_id = _principal(request)
    try:
        run = await request.app[SERVICE_KEY].approve(
            request.match_info["run_id"], principal, token_id
        )
    except CommandRefused as exc:
        metrics.COMMANDS_REFUSED.labels("approval").inc()
        return _error(exc.status, "refused", exc.message)
    return web.json_response(run_view(run))


async def reject_run(request: web.Request) -> web.Response:
    principal, token_id = _principal(request)
    body = await _json_body(request)
    try:
        run = await request.app[SERVICE_KEY].reject(
            request.match_info["run_id"], principal, token_id, str(body.get("reason", ""))
        )
    except CommandRefused as exc:
        metrics.COMMANDS_REFUSED.labels("rejection").inc()
        return _error(exc.status, "refused", exc.message)
    return web.json_response(run_view(run))


async def health(request: web.Request) -> web.Response:
    ready = request.app[SERVICE_KEY].ready.is_set()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def create_app(service: CoordinatorService, tokens: TokenStore) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app[TOKENS_KEY] = tokens
    app.add_routes(
        [
            web.get("/healthz", health),
            web.get("/metrics", prometheus),
            web.get("/v1/protocols", list_protocols),
            web.post("/v1/protocols/{protocol_id}/runs", trigger_run),
            web.get("/v1/runs", list_runs),
            web.get("/v1/runs/{run_id}", get_run),
            web.post("/v1/runs/{run_id}/approve", approve_run),
            web.post("/v1/runs/{run_id}/reject", reject_run),
        ]
    )
    return app
