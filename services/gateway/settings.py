"""Settings of the HTTP gateway (``VERBUND_GATEWAY_*`` plus the common ``VERBUND_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from services.common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """HTTP gateway for partners without Kafka.

    Environment variables: ``VERBUND_CREDENTIALS_FILE`` and/or the legacy
    ``VERBUND_GATEWAY_TOKENS_FILE``,
    ``VERBUND_GATEWAY_HOST``, ``VERBUND_GATEWAY_PORT``, ``VERBUND_GATEWAY_MAX_BODY_BYTES``,
    ``VERBUND_GATEWAY_MAX_EVENTS``, ``VERBUND_GATEWAY_SEND_TIMEOUT``, and
    ``VERBUND_KAFKA_BOOTSTRAP``.
    """

    gateway_tokens_file: Path | None = Field(
        default=None,
        description="Legacy YAML/JSON file {partner_id: [sha256:<hex>, ...]} with hashed "
        "partner tokens; read next to the credentials file (VERBUND_CREDENTIALS_FILE).",
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8480, ge=0, le=65535, description="0 picks a free port.")
    gateway_max_body_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=64 << 20,
        description="Largest accepted request body; larger gets 413. Keep it under the "
        "broker's message.max.bytes (Apache Kafka default: 1 MiB).",
    )
    gateway_max_events: int = Field(
        default=500, ge=1, le=10_000, description="Most events in one JSON array request."
    )
    gateway_send_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds to wait for the broker's ack; then 503."
    )
    gateway_token_reload_seconds: float = Field(
        default=1.0, ge=0, le=3600, description="How often the tokens file is checked for changes."
    )

    @field_validator("gateway_tokens_file")
    @classmethod
    def _tokens_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(
                f"{path} does not exist; create tokens with `verbund access` (issue_token)"
            )
        return path
