"""Process entry point of the console (``verbund console``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from schemas.alliance import load_alliance
from services.common.kafka import ensure_topics
from services.common.logging import configure_logging, get_logger
from services.console.api import create_app
from services.console.auth import OPERATOR, PARTNER
from services.console.service import ConsoleService
from services.console.settings import ConsoleSettings
from services.gateway.tokens import TokenStore


def load_tokens(settings: ConsoleSettings) -> TokenStore:
    """The coordinator tokens; a missing file is not fatal (the console is read-mostly and
    runs in ``verbund up`` before anyone issued a token) but nobody can log in until it
    exists. A malformed file fails fast."""
    path = settings.tokens_path()
    if path.exists():
        return TokenStore.load(path)
    get_logger("console").warning(
        "coordinator_tokens_missing",
        path=str(path),
        hint="issue one with `verbund access issue NAME --tokens-file PATH`",
    )
    return TokenStore(path=path)


async def run_console(settings: ConsoleSettings) -> None:
    configure_logging("console", settings.log_level, settings.log_json)
    log = get_logger("console")
    bootstrap = settings.require_bootstrap()
    alliance = load_alliance(settings.alliance_file) if settings.alliance_file else None
    if alliance is None:
        log.warning("alliance_missing", hint="set VERBUND_ALLIANCE_FILE to show regions")
    tokens = load_tokens(settings)
    await ensure_topics(bootstrap)
    service = ConsoleService(
        bootstrap,
        alliance,
        settings.console_stale_after_seconds,
        min_partners=settings.aggregate_min_partners,
    )
    await service.start()
    role_tokens = {
        role: TokenStore.load(path) if path.exists() else TokenStore(path=path)
        for role, path in (
            (OPERATOR, settings.console_operator_tokens_file),
            (PARTNER, settings.gateway_tokens_file),
        )
        if path is not None
    }
    app = create_app(service, tokens, settings.coordinator_url, role_tokens=role_tokens)
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
