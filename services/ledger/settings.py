"""Ledger settings (``VERBUND_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    group_id: str = Field(default="verbund-ledger", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    ledger_batch_size: int = Field(default=500, ge=1, le=100_000)
    ledger_batch_window: float = Field(default=0.05, gt=0, le=10)
    ledger_balance_interval: float = Field(default=1.0, gt=0, le=3600)
    ledger_dedup_window: int = Field(default=200_000, ge=1_000)
    kafka_session_timeout: float = Field(default=10.0, gt=1)
    retention_positions_days: float | None = Field(
        default=None,
        gt=0,
        description="Drop positions not updated within this many days (periodic sweep, "
        "written to the changelog); unset keeps them until the partner updates or leaves.",
    )
    ledger_sweep_interval: float = Field(
        default=3600.0, gt=0, le=86_400, description="Seconds between retention sweeps."
    )
    kafka_replication_factor: int = Field(default=1, ge=1)
