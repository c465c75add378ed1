"""Settings common to every service, read from ``VERBUND_*`` environment variables.

Each service has one settings class deriving from :class:`ServiceSettings`.
A YAML settings file can be named with ``VERBUND_SETTINGS_FILE``; environment
variables win over it. Invalid settings fail fast with one line naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import field_errors


class SettingsError(ValueError):
    """Settings are missing or invalid; the message says which and why."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERBUND_", extra="ignore", frozen=True)

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port] of an existing Kafka cluster; unset = embedded broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT (embedded broker, trusted network) or SASL with username/password "
        "(services/common/kafka.py: kafka_client_options).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool = True
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    metrics_host: str = "127.0.0.1"
    alliance_file: Path | None = None
    data_dir: Path = Path("var")
    credentials_file: Path | None = Field(
        default=None,
        description="Principals, roles and hashed tokens (services/common/identity.py); "
        "default $VERBUND_DATA_DIR/credentials.yaml.",
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> ServiceSettings:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                f"VERBUND_KAFKA_{name.upper()}"
                for name, value in (
                    ("username", self.kafka_username),
                    ("password", self.kafka_password and self.kafka_password.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"kafka_security_protocol={self.kafka_security_protocol} needs "
                    + " and ".join(missing)
                )
        return self

    def credentials_path(self) -> Path:
        return self.credentials_file or self.data_dir / "credentials.yaml"

    def require_bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise SettingsError("VERBUND_KAFKA_BOOTSTRAP is not set")
        return self.kafka_bootstrap


S = TypeVar("S", bound=ServiceSettings)


def _file_values() -> dict[str, Any]:
    path = os.environ.get("VERBUND_SETTINGS_FILE")
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path}: expected a mapping of setting: value")
    return data


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings from file < environment < explicit overrides; fail with one line."""
    file_values = _file_values()
    env_names = {name for name in cls.model_fields if f"VERBUND_{name.upper()}" in os.environ}
    values = {k: v for k, v in file_values.items() if k not in env_names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SettingsError(f"invalid {cls.__name__}: " + "; ".join(field_errors(exc))) from exc
