"""Process entry point of the coordinator (``verbund coordinator``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from protocols.loader import load_library
from schemas.alliance import load_alliance
from services.common.gc_control import QuietCollector, defer_full_collections
from services.common.identity import Role, build_identities
from services.common.kafka import ensure_topics, kafka_client_options
from services.common.logging import configure_logging, get_logger
from services.common.settings import SettingsError
from services.coordinator import metrics
from services.coordinator.api import create_app
from services.coordinator.checkpoint import Checkpoints
from services.coordinator.service import CoordinatorService
from services.coordinator.settings import CoordinatorSettings
from services.coordinator.store import RunStore


async def run_coordinator(settings: CoordinatorSettings) -> None:
    # every run's decision stays in memory: automatic full collections of that heap took
    # 130-250 ms each inside runs; they happen between runs instead (gc_control)
    defer_full_collections()
    configure_logging("coordinator", settings.log_level, settings.log_json)
    log = get_logger("coordinator")
    bootstrap = settings.require_bootstrap()
    if settings.alliance_file is None:
        raise SettingsError("VERBUND_ALLIANCE_FILE is not set (the coordinator needs the alliance)")
    alliance = load_alliance(settings.alliance_file)
    library = load_library([settings.protocols_dir] if settings.protocols_dir else None)
    for error in library.errors:
        log.error("protocol_refused", error=str(error))
    tokens_path, credentials = settings.tokens_path(), settings.credentials_path()
    if not tokens_path.exists() and not credentials.exists():
        raise SettingsError(
            f"neither {credentials} nor {tokens_path} exists; create coordinator tokens with "
            "`verbund access issue NAME --role coordinator`"
        )
    identities = build_identities(credentials, [(tokens_path, Role.COORDINATOR)])
    kafka_options = kafka_client_options(settings)
    await ensure_topics(bootstrap, options=kafka_options)
    service = CoordinatorService(
        bootstrap,
        alliance,
        library.protocols,
        RunStore(settings.runs_dir(), settings.retention_decisions_days),
        settings.coordinator_tick_seconds,
        kafka_options=kafka_options,
        checkpoints=Checkpoints(settings.run_state_dir()),
        collector=QuietCollector(),
    )
    metrics.register(service.core)
    await service.start()
    runner = web.AppRunner(create_app(service, identities), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.coordinator_host, settings.coordinator_port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.coordinator_port
    log.info("coordinator_listening", url=f"http://{settings.coordinator_host}:{port}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await service.stop()
