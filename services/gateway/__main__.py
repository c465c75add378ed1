"""``python -m services.gateway``: run the gateway from ``VERBUND_*`` settings."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from services.common.broker import BrokerError
from services.common.logging import configure_logging
from services.common.settings import SettingsError, load_settings
from services.gateway.app import run_gateway
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenFileError


def main() -> int:
    try:
        settings = load_settings(GatewaySettings)
        configure_logging("gateway", settings.log_level, settings.log_json)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_gateway(settings))
    except (SettingsError, BrokerError, TokenFileError) as exc:
        sys.stderr.write(f"verbund gateway: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
