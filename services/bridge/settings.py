"""Partner bridge settings (``VERBUND_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from services.common.kafka_acls import BRIDGE_GROUP
from services.common.settings import ServiceSettings

# The ledger's limit (services/ledger/processor.py MAX_MESSAGE_BYTES): larger records are
# dead-lettered here already (a unit test keeps the two equal).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class BridgeSettings(ServiceSettings):
    bridge_group_id: str = Field(
        default=BRIDGE_GROUP,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Consumer group the bridge commits its offsets to (partitions are "
        "assigned by the bridge itself; the group is never joined).",
    )
    bridge_batch_size: int = Field(default=1000, ge=1, le=100_000)
    bridge_max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024)
    bridge_refresh_interval: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds between checks of the alliance file: partners added there get "
        "their topics created and consumed, partners removed are no longer consumed.",
    )
    bridge_fetch_wait: float = Field(
        default=0.1, gt=0, le=10, description="Longest wait of one fetch, in seconds."
    )
    kafka_replication_factor: int = Field(default=1, ge=1)
