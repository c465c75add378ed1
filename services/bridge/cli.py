"""``verbund bridge``: run the partner bridge."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from services.common.settings import load_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _cmd_bridge(args: argparse.Namespace) -> int:
    from services.bridge.run import run_bridge
    from services.bridge.settings import BridgeSettings

    return run_bridge(load_settings(BridgeSettings))


def register(sub: Subparsers) -> None:
    bridge = sub.add_parser(
        "bridge",
        help="run the partner bridge (each partner's own Kafka topics <-> the shared topics)",
    )
    bridge.set_defaults(handler=_cmd_bridge)
