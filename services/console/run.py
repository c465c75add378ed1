"""Process entry point of the console (``verbund console``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from schemas.alliance import load_alliance
from services.common.identity import Role, build_identities
from services.common.kafka import ensure_topics, kafka_client_options
from services.common.logging import configure_logging, get_logger
from services.console.api import create_app
from services.console.service import ConsoleService
from services.console.settings import ConsoleSettings


def warn_if_nobody_can_log_in(settings: ConsoleSettings) -> None:
    """A missing credentials/tokens file is not fatal (the console is read-mostly and runs in
    ``verbund up`` before anyone issued a token; files are picked up when they appear), but
    nobody can log in until one exists. A malformed file fails fast (build_identities)."""
    if not settings.credentials_path().exists() and not settings.tokens_path().exists():
        get_logger("console").warning(
            "credentials_missing",
            path=str(settings.credentials_path()),
            hint="issue one with `verbund access issue NAME --role coordinator`",
        )


async def run_console(settings: ConsoleSettings) -> None:
    configure_logging("console", settings.log_level, settings.log_json)
    log = get_logger("console")
    bootstrap = settings.require_bootstrap()
    alliance = load_alliance(settings.alliance_file) if settings.alliance_file else None
    if alliance is None:
        log.warning("alliance_missing", hint="set VERBUND_ALLIANCE_FILE to show regions")
    warn_if_nobody_can_log_in(settings)
    kafka_options = kafka_client_options(settings)
    await ensure_topics(bootstrap, options=kafka_options)
    service = ConsoleService(
        bootstrap,
        alliance,
        settings.console_stale_after_seconds,
        min_partners=settings.aggregate_min_partners,
        kafka_options=kafka_options,
    )
    await service.start()
    identities = build_identities(
        settings.credentials_path(),
        [
            (settings.tokens_path(), Role.COORDINATOR),
            (settings.console_operator_tokens_file, Role.OPERATOR),
            (settings.gateway_tokens_file, Role.PARTNER),
        ],
    )
    app = create_app(service, identities, settings.coordinator_url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.console_host, settings.console_port, shutdown_timeout=1.0)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.console_port
    log.info(
        "console_listening",
        url=f"http://{settings.console_host}:{port}/",
        coordinator=settings.coordinator_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await service.stop()
