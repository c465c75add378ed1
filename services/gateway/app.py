"""aiohttp wiring of the gateway: routes, metrics, the Kafka producer, start and stop.

Routes: ``POST /v1/events`` (see :mod:`services.gateway.core` for the contract),
``GET /healthz``, ``GET /metrics`` (Prometheus text). Who may call which is
:data:`ROUTE_POLICIES` (enforced by :mod:`services.common.access`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from schemas.events import PARTNER_EVENT_TYPES
from services.common.access import (
    AccessControl,
    Policy,
    RefusalPublisher,
    RouteKey,
    allow,
    audit_refusal,
    install_access,
    principal_of,
    producer_send,
)
from services.common.access import public as public_route
from services.common.broker import BrokerError
from services.common.identity import IdentityStore, Role, build_identities
from services.common.kafka import durable_producer, kafka_client_options
from services.common.metrics import LATENCY_BUCKETS
from services.common.topics import PARTNER_EVENTS
from services.gateway.core import (
    REJECTION_REASONS,
    Rejection,
    Submission,
    broker_unavailable,
    check_content_length,
    check_content_type,
    check_partner,
    encode,
    parse_submission,
    too_large,
    unreadable_body,
)
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenStore

SERVICE = "gateway"
log = structlog.get_logger("verbund.gateway", service=SERVICE)


@dataclass
class GatewayMetrics:
    """The gateway's metrics, in their own registry (several apps can live in one process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.accepted = Counter(
            "verbund_gateway_events_accepted",
            "Partner events written to Kafka and acknowledged, by event type.",
            ["type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "verbund_gateway_requests_rejected",
            "Requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "verbund_gateway_request_duration_seconds",
            "Time from request start to answer for POST /v1/events, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for event_type in PARTNER_EVENT_TYPES:
            self.accepted.labels(type=event_type.__name__)
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason=reason)


APP_SETTINGS = web.AppKey("settings", GatewaySettings)
APP_IDENTITIES = web.AppKey("identities", IdentityStore)
APP_METRICS = web.AppKey("metrics", GatewayMetrics)
APP_PRODUCER = web.AppKey("producer", AIOKafkaProducer)
STARTED_KEY = web.RequestKey("started", float)
REQUEST_ID_KEY = web.RequestKey("request_id", str)

# Who may call what (services/common/access.py); the access-matrix test checks that every
# route is here. Events are about the caller only: checked per event (core.check_partner).
ROUTE_POLICIES: dict[RouteKey, Policy] = {
    ("POST", "/v1/events"): allow("post_events", Role.PARTNER, own_in_body=True),
    ("GET", "/healthz"): public_route("health"),
    ("GET", "/metrics"): public_route("metrics"),
}


def _render_refusal(request: web.Request, status: int, reason: str, message: str) -> web.Response:
    """Access refusals in the gateway's error format, counted like every other rejection."""
    if status == 401:
        reason = "unauthorized"
        rejection = Rejection(
            401,
            reason,
            message,
            [{"field": "Authorization", "problem": message, "code": "unauthorized"}],
            headers={"WWW-Authenticate": 'Bearer realm="verbund"'},
        )
    else:
        reason = "forbidden_role" if status == 403 else reason
        rejection = Rejection(status, reason, message)
    return _rejected(request, rejection, None)


def _rejected(
    request: web.Request, rejection: Rejection, partner_id: str | None
) -> web.Response:
    metrics = request.app[APP_METRICS]
    metrics.rejected.labels(reason=rejection.reason).inc()
    outcome = "unavailable" if rejection.status == 503 else "rejected"
    started = request.get(STARTED_KEY, time.perf_counter())
    metrics.latency.labels(outcome=outcome).observe(time.perf_counter() - started)
    request_id = request.get(REQUEST_ID_KEY, "")
    # Field names only: values (stock figures) never reach the log.
    log.warning(
        "request_rejected",
        status=rejection.status,
        reason=rejection.reason,
        fields=rejection.fields[:20],
        partner_id=partner_id,
        request_id=request_id,
    )
    response = web.json_response(
        rejection.body(),
        status=rejection.status,
        headers={**rejection.headers, "X-Request-Id": request_id},
    )
    if rejection.close:
        response.force_close()
    return response


@web.middleware
async def _timed(request: web.Request, handler: Any) -> web.StreamResponse:
    request[STARTED_KEY] = time.perf_counter()
    request[REQUEST_ID_KEY] = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    response: web.StreamResponse = await handler(request)
    return response


async def _read_body(request: web.Request, limit: int) -> bytes:
    check_content_length(request.content_length, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except web.RequestPayloadError as exc:  # e.g. "Content-Encoding: gzip" on a plain body
        # nothing more can be read: don't let aiohttp drain it after the answer (it would
        # log the same error again as unhandled); the answer closes the connection
        request.content.feed_eof()
        detail = getattr(exc.__cause__, "message", None) or str(exc)
        raise unreadable_body(request.headers.get("Content-Encoding"), str(detail)) from None
    return b"".join(chunks)


async def _publish(
    producer: AIOKafkaProducer, submission: Submission, partner_id: str, timeout: float
) -> None:
    key = partner_id.encode("utf-8")
    headers = [("content-type", b"application/json"), ("verbund-source", b"gateway")]

    async def send_all() -> None:
        pending = [
            await producer.send(PARTNER_EVENTS.name, encode(event), key=key, headers=headers)
            for event in submission.events
        ]
        await asyncio.gather(*pending)

    try:
        await asyncio.wait_for(send_all(), timeout)
    except TimeoutError:
        raise broker_unavailable(f"no acknowledgement within {timeout:g}s") from None
    except (KafkaError, OSError) as exc:
        raise broker_unavailable(type(exc).__name__) from None


async def post_events(request: web.Request) -> web.Response:
    app = request.app
    settings, metrics = app[APP_SETTINGS], app[APP_METRICS]
    started = request[STARTED_KEY]
    request_id = request[REQUEST_ID_KEY]
    partner_id = principal_of(request).id
    try:
        check_content_type(request.headers.get("Content-Type"))
        body = await _read_body(request, settings.gateway_max_body_bytes)
        submission = parse_submission(body, settings.gateway_max_events)
        try:
            check_partner(submission, partner_id)
        except Rejection as rejection:
            # audited like every access refusal; answered 403 (nothing is looked up)
            await audit_refusal(request, f"events about another partner: {rejection.fields}")
            raise
        await _publish(app[APP_PRODUCER], submission, partner_id, settings.gateway_send_timeout)
    except Rejection as rejection:
        return _rejected(request, rejection, partner_id)
    for event in submission.events:
        metrics.accepted.labels(type=event.type).inc()
        log.info(
            "event_accepted",
            event_id=event.event_id,
            partner_id=partner_id,
            event_type=event.type,
            request_id=request_id,
        )
    metrics.latency.labels(outcome="accepted").observe(time.perf_counter() - started)
    return web.json_response(
        {
            "status": 202,
            "accepted": len(submission.events),
            "event_ids": [event.event_id for event in submission.events],
        },
        status=202,
        headers={"X-Request-Id": request_id},
    )


async def get_health(request: web.Request) -> web.Response:
    problems = request.app[APP_IDENTITIES].problems
    body: dict[str, Any] = {"status": "degraded" if problems else "ok"}
    if problems:
        body["problem"] = "tokens file unreadable; last good tokens in use"
    return web.json_response(body)


async def get_metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[APP_METRICS].registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def gateway_identities(settings: GatewaySettings) -> IdentityStore:
    """The credentials file (any role; the policies decide) and the legacy partner tokens."""
    return build_identities(
        settings.credentials_path(),
        [(settings.gateway_tokens_file, Role.PARTNER)],
        settings.gateway_token_reload_seconds,
    )


def create_app(
    settings: GatewaySettings,
    producer: AIOKafkaProducer,
    tokens: TokenStore | None = None,
    metrics: GatewayMetrics | None = None,
    identities: IdentityStore | None = None,
    refusals: RefusalPublisher | None = None,
) -> web.Application:
    """The gateway as an aiohttp application around a started producer (tests pass their own).

    ``tokens`` (legacy partner tokens) or ``identities`` replace what the settings name;
    refusals are published with ``producer`` unless ``refusals`` is given."""
    app = web.Application(
        client_max_size=settings.gateway_max_body_bytes + 1, middlewares=[_timed]
    )
    app[APP_SETTINGS] = settings
    if identities is None:
        identities = (
            IdentityStore.legacy_only(tokens, Role.PARTNER)
            if tokens is not None
            else gateway_identities(settings)
        )
    app[APP_IDENTITIES] = identities
    app[APP_METRICS] = metrics or GatewayMetrics()
    app[APP_PRODUCER] = producer
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", get_health)
    app.router.add_get("/metrics", get_metrics)
    install_access(
        app,
        AccessControl(
            SERVICE,
            ROUTE_POLICIES,
            identities,
            refusals or RefusalPublisher(SERVICE, producer_send(producer)),
            _render_refusal,
        ),
    )
    return app


class GatewayServer:
    """Producer + HTTP server; ``start`` returns the base URL, ``stop`` releases both."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.url: str | None = None
        self._producer: AIOKafkaProducer | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        settings = self.settings
        identities = gateway_identities(settings)
        bootstrap = settings.require_bootstrap()
        producer = durable_producer(
            bootstrap,
            kafka_client_options(settings),
            request_timeout_ms=int(settings.gateway_send_timeout * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), settings.gateway_send_timeout)
            partitions = await asyncio.wait_for(
                producer.partitions_for(PARTNER_EVENTS.name), settings.gateway_send_timeout
            )
        except (TimeoutError, KafkaError, OSError) as exc:
            await producer.stop()
            raise BrokerError(
                f"gateway cannot write to {PARTNER_EVENTS.name} on {bootstrap}: {exc!r}"
            ) from exc
        self._producer = producer
        runner = web.AppRunner(
            create_app(settings, producer, identities=identities), access_log=None
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise BrokerError(
                f"gateway cannot listen on {settings.gateway_host}:{settings.gateway_port}: {exc}"
            ) from exc
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        log.info(
            "gateway_listening",
            url=self.url,
            topic=PARTNER_EVENTS.name,
            partitions=len(partitions),
            credentials=str(settings.credentials_path()),
        )
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        producer, self._producer = self._producer, None
        if runner is not None:
            await runner.cleanup()
        if producer is not None:
            await producer.stop()
        log.info("gateway_stopped")


async def run_gateway(settings: GatewaySettings) -> None:
    """Run the gateway until cancelled. Raises BrokerError/TokenFileError on start-up problems."""
    server = GatewayServer(settings)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
