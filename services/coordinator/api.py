"""The coordinator's HTTP API for crisis coordinators (bearer tokens, JSON).

``GET  /v1/protocols``                  the library with review status
``POST /v1/protocols/{id}/runs``        trigger a run (202; 200 with the active run of the scope)
``GET  /v1/runs``, ``GET /v1/runs/{id}`` runs, and one run with its decision and orders
``POST /v1/runs/{id}/approve|reject``   approval gate (four eyes where the protocol says so)
``GET  /v1/purchasing/quotes``          supplier quotes of the purchasing pools (prices)
``PUT|DELETE /v1/purchasing/quotes/{supplier}/{material}``  set or withdraw a quote
``GET  /healthz``, ``GET /metrics``

Who may call which: :data:`ROUTE_POLICIES` (enforced by :mod:`services.common.access`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from protocols.decisions import Decision
from schemas.errors import field_error_details
from schemas.purchasing import SupplierQuoteSet
from services.common.access import (
    AccessControl,
    Policy,
    RefusalPublisher,
    RouteKey,
    Send,
    allow,
    audit_refusal,
    install_access,
    not_found,
    principal_of,
    public,
)
from services.common.aggregates import (
    generic_explanation,
    generic_run_detail,
    group_figures,
    min_partners_from_env,
)
from services.common.identity import IdentityStore, Role
from services.common.tokens import TokenStore
from services.coordinator import metrics
from services.coordinator.core import CommandRefused, FourEyesRefused, Run
from services.coordinator.service import CoordinatorService

SERVICE = "coordinator"
SERVICE_KEY = web.AppKey("service", CoordinatorService)
MIN_PARTNERS_KEY = web.AppKey("min_partners", int)  # k of the k-partner rule

COORD, OPS, AUDIT = Role.COORDINATOR, Role.OPERATOR, Role.AUDITOR
# Who may call what; the access-matrix test checks that every route is here. Partners have
# no business on the coordinator API (their orders reach them on Kafka and in the console).
ROUTE_POLICIES: dict[RouteKey, Policy] = {
    ("GET", "/healthz"): public("health"),
    ("GET", "/metrics"): public("metrics"),
    ("GET", "/v1/protocols"): allow("list_protocols", COORD, OPS, AUDIT),
    ("POST", "/v1/protocols/{protocol_id}/runs"): allow("trigger_protocol", COORD),
    ("GET", "/v1/runs"): allow("list_runs", COORD, OPS, AUDIT),
    ("GET", "/v1/runs/{run_id}"): allow("show_run", COORD, AUDIT),
    ("POST", "/v1/runs/{run_id}/approve"): allow("approve_run", COORD),
    ("POST", "/v1/runs/{run_id}/reject"): allow("reject_run", COORD),
    # prices exist only inside purchasing pools, seen by coordinators (need-to-know)
    ("GET", "/v1/purchasing/quotes"): allow("list_quotes", COORD),
    ("PUT", "/v1/purchasing/quotes/{supplier_id}/{material_id}"): allow("set_quote", COORD),
    ("DELETE", "/v1/purchasing/quotes/{supplier_id}/{material_id}"): allow("withdraw_quote", COORD),
}


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"status": status, "reason": reason, "message": message}, status=status
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as exc:  # also a body that is not UTF-8
        raise _bad_request("invalid_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # e.g. 64 KiB of '[': json's decoder recurses per level
        raise _bad_request("invalid_json", "the body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise _bad_request("invalid_body", "expected a JSON object")
    return body


def _bad_request(reason: str, message: str) -> web.HTTPBadRequest:
    """A 400 whose body is JSON whatever the message holds (quotes, backslashes)."""
    return web.HTTPBadRequest(
        text=orjson.dumps({"status": 400, "reason": reason, "message": message}).decode(),
        content_type="application/json",
    )


# what a purchase share says about money: coordinators only (prices stay inside the pool)
PRICE_FIELDS = ("unit_price_pooled", "cost_pooled", "cost_alone", "saving")


def run_view(
    run: Run, detail: bool = False, prices: bool = True, min_partners: int | None = None
) -> dict[str, Any]:
    """A run as the API shows it. ``min_partners`` (k) for roles other than coordinator:
    per-tier figures only where at least k partners stand behind them, generic texts
    instead of a decision's explanation and a failed run's detail (need-to-know);
    ``None``: everything (coordinators)."""
    view = run.summary()
    view["triggered_at"] = datetime.fromtimestamp(run.triggered_at, UTC).isoformat()
    decision_status = run.decision.status.value if run.decision is not None else None
    if min_partners is not None:
        view["detail"] = generic_run_detail(run.state.value, run.detail, decision_status)
    if detail and run.decision is not None:
        decision = run.decision
        requested: dict[Any, float | None] = dict(decision.requested_by_tier)
        unmet: dict[Any, float | None] = dict(decision.unmet_by_tier)
        explanation = decision.explanation
        if min_partners is not None:
            requested, unmet = _tier_figures(decision, min_partners)
            explanation = generic_explanation(decision.status.value, explanation)
        view["decision"] = {
            "status": decision.status.value,
            "proven_optimal": decision.proven_optimal,
            "explanation": explanation,
            "requested_by_tier": requested,
            "unmet_by_tier": unmet,
            # a pool's total is a price figure too
            "total_cost": decision.total_cost
            if prices or decision.kind != "joint_purchasing"
            else None,
        }
        view["order_list"] = [
            {
                "order_id": o.order_id,
                "revision": o.revision,
                "kind": o.kind,
                "responder": o.responder,
                "informed": list(o.informed),
                "state": o.state.value,
                "order": o.payload if prices or o.kind != "purchase" else _no_prices(o.payload),
            }
            for o in run.orders.values()
        ]
    return view


def _tier_figures(
    decision: Decision, k: int
) -> tuple[dict[Any, float | None], dict[Any, float | None]]:
    """Requested and unmet per tier, ``None`` where fewer than ``k`` partners stand behind a
    tier or its unmet quantity (services.common.aggregates.group_figures)."""
    groups = group_figures(
        (
            (str(f.tier), f.partner_id, {"requested": f.requested, "unmet": f.unmet})
            for f in decision.fulfilment
        ),
        k,
    )
    tiers = {int(t): g for t, g in groups.items()}
    return (
        {t: None if g is None else g["requested"] for t, g in tiers.items()},
        {t: None if g is None else g["unmet"] for t, g in tiers.items()},
    )


def _min_partners(request: web.Request) -> int | None:
    """k for the caller's role: ``None`` (no suppression) for coordinators."""
    if principal_of(request).role is Role.COORDINATOR:
        return None
    return request.app[MIN_PARTNERS_KEY]


def _no_prices(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in PRICE_FIELDS}


async def list_protocols(request: web.Request) -> web.Response:
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
    principal = principal_of(request).id
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
    runs = request.app[SERVICE_KEY].core.runs.values()
    k = _min_partners(request)
    return web.json_response(
        [run_view(r, min_partners=k) for r in sorted(runs, key=lambda r: -r.triggered_at)]
    )


async def get_run(request: web.Request) -> web.Response:
    run = request.app[SERVICE_KEY].core.runs.get(request.match_info["run_id"])
    if run is None:
        return not_found(request)
    prices = principal_of(request).role is Role.COORDINATOR
    view = run_view(run, detail=True, prices=prices, min_partners=_min_partners(request))
    return web.json_response(view)


async def approve_run(request: web.Request) -> web.Response:
    caller = principal_of(request)
    try:
        run = await request.app[SERVICE_KEY].approve(
            request.match_info["run_id"], caller.id, caller.token_id
        )
    except FourEyesRefused as exc:
        metrics.COMMANDS_REFUSED.labels("approval").inc()
        await audit_refusal(request, f"four eyes: {exc.message}")
        return _error(exc.status, "refused", exc.message)
    except CommandRefused as exc:
        metrics.COMMANDS_REFUSED.labels("approval").inc()
        return _error(exc.status, "refused", exc.message)
    return web.json_response(run_view(run))


async def reject_run(request: web.Request) -> web.Response:
    caller = principal_of(request)
    body = await _json_body(request)
    try:
        run = await request.app[SERVICE_KEY].reject(
            request.match_info["run_id"], caller.id, caller.token_id, str(body.get("reason", ""))
        )
    except CommandRefused as exc:
        metrics.COMMANDS_REFUSED.labels("rejection").inc()
        return _error(exc.status, "refused", exc.message)
    return web.json_response(run_view(run))


def quote_view(quote: SupplierQuoteSet) -> dict[str, Any]:
    return quote.model_dump(mode="json", exclude={"type", "command_id", "token_id"})


async def list_quotes(request: web.Request) -> web.Response:
    book = request.app[SERVICE_KEY].quotes
    return web.json_response([quote_view(q) for _, q in sorted(book.quotes.items())])


async def set_quote(request: web.Request) -> web.Response:
    body = await _json_body(request)
    unknown = sorted(set(body) - {"tiers", "valid_until"})
    if unknown:
        return _invalid_quote(
            [{"field": f, "problem": "Extra inputs are not permitted"} for f in unknown]
        )
    if not body.get("tiers"):
        problem = "at least one tier is required (DELETE withdraws a quote)"
        return _invalid_quote([{"field": "tiers", "problem": problem}])
    return await _record_quote(request, body)


async def withdraw_quote(request: web.Request) -> web.Response:
    return await _record_quote(request, {"tiers": []})


async def _record_quote(request: web.Request, fields: dict[str, Any]) -> web.Response:
    caller = principal_of(request)
    try:
        quote = SupplierQuoteSet.model_validate_json(
            orjson.dumps(
                {
                    "command_id": f"cmd-{secrets.token_hex(8)}",
                    "supplier_id": request.match_info["supplier_id"],
                    "material_id": request.match_info["material_id"],
                    "set_by": caller.id,
                    "token_id": caller.token_id,
                    "at": datetime.now(UTC).isoformat(),
                    **fields,
                }
            )
        )
    except ValidationError as exc:
        return _invalid_quote(field_error_details(exc))
    except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. an integer beyond 64 bits
        return _invalid_quote([{"field": "(body)", "problem": f"not representable: {exc}"}])
    await request.app[SERVICE_KEY].set_quote(quote)
    return web.json_response(quote_view(quote))


def _invalid_quote(details: list[dict[str, str]]) -> web.Response:
    message = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    metrics.COMMANDS_REFUSED.labels("quote").inc()
    return web.json_response(
        {"status": 422, "reason": "invalid_quote", "message": message, "errors": details},
        status=422,
    )


async def health(request: web.Request) -> web.Response:
    ready = request.app[SERVICE_KEY].ready.is_set()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def _send_with(service: CoordinatorService) -> Send:
    """Refusals go out with the service's producer (started with the service)."""

    async def send(topic: str, key: bytes, value: bytes) -> None:
        if service.producer is None:
            raise RuntimeError("coordinator producer not started")
        await (await service.producer.send(topic, value, key=key))

    return send


def create_app(
    service: CoordinatorService,
    identities: IdentityStore | TokenStore,
    refusals: RefusalPublisher | None = None,
    min_partners: int | None = None,
) -> web.Application:
    """The API around a service; ``identities`` may be a legacy coordinator tokens store.
    ``min_partners``: k of the k-partner rule for what operators and auditors see of a
    decision (default ``VERBUND_AGGREGATE_MIN_PARTNERS``, 3)."""
    if isinstance(identities, TokenStore):
        identities = IdentityStore.legacy_only(identities, Role.COORDINATOR)
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app[MIN_PARTNERS_KEY] = min_partners_from_env() if min_partners is None else min_partners
    install_access(
        app,
        AccessControl(
            SERVICE,
            ROUTE_POLICIES,
            identities,
            refusals or RefusalPublisher(SERVICE, _send_with(service)),
        ),
    )
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
            web.get("/v1/purchasing/quotes", list_quotes),
            web.put("/v1/purchasing/quotes/{supplier_id}/{material_id}", set_quote),
            web.delete("/v1/purchasing/quotes/{supplier_id}/{material_id}", withdraw_quote),
        ]
    )
    return app
