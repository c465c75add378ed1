"""Console settings (``VERBUND_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    console_host: str = "127.0.0.1"
    console_port: int = Field(default=8500, ge=0, le=65535, description="0 picks a free port.")
    coordinator_url: str = Field(
        default="http://127.0.0.1:8490",
        pattern=r"^https?://",
        description="The coordinator API; approvals and rejections are forwarded to it.",
    )
    coordinator_tokens_file: Path | None = Field(
        default=None,
        description="Coordinator bearer tokens {principal: [sha256:...]} (the coordinator's "
        "file); default $VERBUND_DATA_DIR/coordinator-tokens.yaml.",
    )
    console_stale_after_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="Partners whose newest data is older than this are shown as stale "
        "(the VerbundPartnerSilent alert uses the same 6 hours).",
    )

    gateway_tokens_file: Path | None = Field(
        default=None,
        description="Partner bearer tokens (the gateway's file); a partner signs in to the "
        "console with its gateway token and sees only its own data.",
    )
    console_operator_tokens_file: Path | None = Field(
        default=None, description="Operator bearer tokens {name: [sha256:...]}."
    )
    aggregate_min_partners: int = Field(
        default=3,
        ge=2,
        description="k: alliance-wide figures are shown only over at least k partners "
        "(services/common/aggregates.py).",
    )

    def tokens_path(self) -> Path:
        return self.coordinator_tokens_file or self.data_dir / "coordinator-tokens.yaml"


class StatusSettings(ServiceSettings):
    """``verbund status``: where the console is and which coordinator token to use."""

    console_url: str = Field(default="http://127.0.0.1:8500", pattern=r"^https?://")
    coordinator_token: str | None = None
