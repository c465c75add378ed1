"""Request handling of the HTTP gateway, without aiohttp: checks in the order they apply.

``POST /v1/events`` takes either one event (a JSON object) or a batch (a JSON
array of 1..``max_events`` events). A batch is all-or-nothing at validation: one
bad event rejects the request and nothing is written. Error answers are::

    {"status": 422, "reason": "invalid_event", "message": "...",
     "errors": [{"field": "positions.0.on_hand", "problem": "...", "code": "..."}]}

In a batch, field paths start with the event's index (``"2.positions.0.unit"``).
Statuses: 401 missing/unknown token, 415 not JSON, 413 body too large or too many
events, 400 not parseable as JSON, 422 valid JSON that breaks the contract,
403 an event about another partner, 503 the broker did not acknowledge in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from schemas.errors import field_error_details
from schemas.events import PartnerEvent, partner_event_adapter

MEDIA_TYPE = "application/json"


class Rejection(Exception):
    """A request the gateway refuses; carries the HTTP status and a field-level reason."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.errors = list(errors)
        self.headers = headers or {}
        self.close = False  # True: end the connection after the answer

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "errors": self.errors,
        }

    @property
    def fields(self) -> list[str]:
        return [e["field"] for e in self.errors]


# Every reason a request can be rejected for (the ``reason`` metric label).
REJECTION_REASONS = (
    "unauthorized",
    "unsupported_media_type",
    "payload_too_large",
    "too_many_events",
    "invalid_json",
    "invalid_event",
    "duplicate_event_id",
    "forbidden_partner",
    "forbidden_role",
    "broker_unavailable",
)


class TokenLookup(Protocol):
    def partner_for(self, token: str) -> str | None: ...


def _unauthorized(message: str) -> Rejection:
    return Rejection(
        401,
        "unauthorized",
        message,
        [{"field": "Authorization", "problem": message, "code": "unauthorized"}],
        headers={"WWW-Authenticate": 'Bearer realm="verbund"'},
    )


def authenticate(authorization: str | None, tokens: TokenLookup) -> str:
    """The partner id the bearer token belongs to; 401 otherwise."""
    if not authorization:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be 'Bearer <token>'")
    partner = tokens.partner_for(token.strip())
    if partner is None:
        raise _unauthorized("unknown or revoked token")
    return partner


def check_content_type(content_type: str | None) -> None:
    """Only ``application/json`` (optionally ``; charset=utf-8``); 415 otherwise."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    charset = ""
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media != MEDIA_TYPE or charset not in ("", "utf-8", "utf8"):
        shown = (content_type or "none").strip()[:80]
        raise Rejection(
            415,
            "unsupported_media_type",
            f"Content-Type must be {MEDIA_TYPE} (UTF-8), got {shown!r}",
            [{"field": "Content-Type", "problem": f"expected {MEDIA_TYPE}", "code": "media_type"}],
        )


def too_large(limit: int, size: int | None = None) -> Rejection:
    got = f" ({size} bytes)" if size is not None else ""
    return Rejection(
        413,
        "payload_too_large",
        f"request body exceeds {limit} bytes{got}; send fewer positions per request",
        [{"field": "(body)", "problem": f"larger than {limit} bytes", "code": "too_large"}],
    )


def unreadable_body(content_encoding: str | None, detail: str) -> Rejection:
    """400 for a body that cannot be read as sent (a broken or unsupported compression)."""
    encoding = (content_encoding or "").strip()[:40]
    field = "Content-Encoding" if encoding else "(body)"
    how = f" as Content-Encoding {encoding!r}" if encoding else ""
    rejection = Rejection(
        400,
        "invalid_json",
        f"request body cannot be decoded{how}; send plain or correctly gzip-compressed JSON",
        [{"field": field, "problem": " ".join(detail.split())[:200], "code": "content_encoding"}],
    )
    rejection.close = True  # the rest of the stream is unreadable too
    return rejection


def check_content_length(content_length: int | None, limit: int) -> None:
    if content_length is not None and content_length > limit:
        raise too_large(limit, content_length)


@dataclass(frozen=True)
class Submission:
    """The validated events of one request; ``batch`` tells how they were sent."""

    events: list[PartnerEvent]
    batch: bool

    def field(self, index: int, name: str) -> str:
        return f"{index}.{name}" if self.batch else name


_batch_adapter: TypeAdapter[list[PartnerEvent]] = TypeAdapter(list[PartnerEvent])


def _json_invalid(exc: ValidationError) -> Rejection | None:
    for err in exc.errors(include_url=False):
        if err["type"] == "json_invalid":
            return Rejection(
                400,
                "invalid_json",
                "request body is not valid JSON",
                [{"field": "(body)", "problem": err["msg"], "code": "json_invalid"}],
            )
    return None


def parse_submission(body: bytes, max_events: int) -> Submission:
    """Validate one event (JSON object) or a batch (JSON array) against the contracts."""
    stripped = body.lstrip()
    if not stripped:
        raise Rejection(
            400,
            "invalid_json",
            "request body is empty",
            [{"field": "(body)", "problem": "empty body", "code": "json_invalid"}],
        )
    batch = stripped[:1] == b"["
    try:
        events = (
            _batch_adapter.validate_json(body)
            if batch
            else [partner_event_adapter.validate_json(body)]
        )
    except ValidationError as exc:
        raise _json_invalid(exc) or Rejection(
            422,
            "invalid_event",
            f"{exc.error_count()} field(s) break the contract",
            field_error_details(exc),
        ) from None
    if not events:
        raise Rejection(
            422,
            "invalid_event",
            "an empty array carries no event",
            [{"field": "(body)", "problem": "at least one event is required", "code": "too_short"}],
        )
    if len(events) > max_events:
        raise Rejection(
            413,
            "too_many_events",
            f"{len(events)} events in one request; at most {max_events}",
            [{"field": "(body)", "problem": f"more than {max_events} events", "code": "too_long"}],
        )
    submission = Submission(events=events, batch=batch)
    seen: dict[str, int] = {}
    for index, event in enumerate(events):
        first = seen.setdefault(event.event_id, index)
        if first != index:
            raise Rejection(
                422,
                "duplicate_event_id",
                f"event {index} repeats the event_id of event {first}",
                [
                    {
                        "field": submission.field(index, "event_id"),
                        "problem": f"same event_id as event {first}",
                        "code": "duplicate",
                    }
                ],
            )
    return submission


def check_partner(submission: Submission, partner_id: str) -> None:
    """A partner may only report about itself: 403 for any event naming another partner."""
    foreign = [
        submission.field(index, "partner_id")
        for index, event in enumerate(submission.events)
        if event.partner_id != partner_id
    ]
    if foreign:
        raise Rejection(
            403,
            "forbidden_partner",
            "the token's partner may only submit events about itself",
            [
                {"field": name, "problem": "not the token's partner", "code": "forbidden"}
                for name in foreign[:20]
            ],
        )


def encode(event: PartnerEvent) -> bytes:
    """The record value written to Kafka: the canonical JSON of the validated event."""
    return event.model_dump_json().encode("utf-8")


def broker_unavailable(detail: str) -> Rejection:
    return Rejection(
        503,
        "broker_unavailable",
        "the event store did not acknowledge the write; retry later (event ids de-duplicate)",
        [{"field": "(broker)", "problem": detail[:200], "code": "unavailable"}],
        headers={"Retry-After": "5"},
    )
