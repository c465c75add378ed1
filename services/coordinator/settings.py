"""Coordinator settings (``VERBUND_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


class CoordinatorSettings(ServiceSettings):
    coordinator_host: str = "127.0.0.1"
    coordinator_port: int = Field(default=8490, ge=0, le=65535, description="0 picks a free port.")
    coordinator_tokens_file: Path | None = Field(
        default=None,
        description="Coordinator bearer tokens {principal: [sha256:...]}; "
        "default $VERBUND_DATA_DIR/coordinator-tokens.yaml.",
    )
    protocols_dir: Path | None = Field(
        default=None, description="Protocol library folder; default: protocols/library."
    )
    coordinator_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    retention_decisions_days: float | None = Field(
        default=None,
        gt=0,
        description="Keep run records (decision, protocol, snapshot) and finished runs this "
        "many days; unset keeps them (the audit log keeps its own entries regardless).",
    )

    def tokens_path(self) -> Path:
        return self.coordinator_tokens_file or self.data_dir / "coordinator-tokens.yaml"

    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def run_state_dir(self) -> Path:
        """Checkpoints of the runs the coordinator keeps (services/coordinator/checkpoint.py)."""
        return self.data_dir / "coordinator-state"
