"""Process entry point of the partner bridge (``verbund bridge``)."""

from __future__ import annotations

import asyncio

from services.bridge.service import PartnerBridge
from services.bridge.settings import BridgeSettings
from services.common.kafka import ensure_topics, kafka_client_options
from services.common.logging import configure_logging, get_logger
from services.common.metrics import serve_metrics
from services.common.runner import run_until_signalled
from services.common.settings import SettingsError


def run_bridge(settings: BridgeSettings) -> int:
    configure_logging("bridge", settings.log_level, settings.log_json)
    log = get_logger("bridge")
    if settings.alliance_file is None:
        raise SettingsError(
            "VERBUND_ALLIANCE_FILE is not set (the bridge serves the alliance's partners)"
        )
    bootstrap = settings.require_bootstrap()
    asyncio.run(
        ensure_topics(
            bootstrap,
            replication_factor=settings.kafka_replication_factor,
            options=kafka_client_options(settings),
        )
    )
    port = serve_metrics(settings.metrics_host, settings.metrics_port)
    log.info(
        "bridge_starting",
        bootstrap=bootstrap,
        alliance=str(settings.alliance_file),
        metrics=f"http://{settings.metrics_host}:{port}/metrics",
    )
    bridge = PartnerBridge(settings, bootstrap, settings.alliance_file)
    return run_until_signalled(bridge.run())
