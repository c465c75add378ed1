"""Audit service settings (``VERBUND_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    audit_log: Path | None = Field(
        default=None, description="The audit log file; default $VERBUND_DATA_DIR/audit/audit.log."
    )
    audit_group_id: str = Field(default="verbund-audit", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    audit_batch_size: int = Field(default=1000, ge=1, le=100_000)
    audit_verify_interval: float = Field(
        default=600.0, ge=0, description="Seconds between full re-verifications; 0 = only at start."
    )
    audit_lag_interval: float = Field(default=5.0, gt=0, le=3600)
    kafka_session_timeout: float = Field(default=10.0, gt=1)

    @property
    def audit_log_path(self) -> Path:
        return (
            self.audit_log if self.audit_log is not None else self.data_dir / "audit" / "audit.log"
        )
