"""Run a long-lived coroutine until SIGINT or SIGTERM, then let it clean up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any


async def _until_signalled(main: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_until_signalled(main: Coroutine[Any, Any, Any]) -> int:
    asyncio.run(_until_signalled(main))
    return 0
