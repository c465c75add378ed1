"""The ``verbund`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from schemas.alliance import AllianceFileError, load_alliance
from services.cli.console import fail, say
from services.common.broker import BrokerError, EmbeddedBroker
from services.common.kafka import ensure_topics
from services.common.logging import configure_logging
from services.common.settings import ServiceSettings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace], int]


def _cmd_up(args: argparse.Namespace) -> int:
    from services.cli.stack import StackOptions, run_stack

    settings = load_settings(ServiceSettings)
    configure_logging("verbund-up", settings.log_level, settings.log_json)
    options = StackOptions(
        demo=args.demo,
        run_for=args.run_for,
        partners=args.partners,
        tick_seconds=args.tick,
        disruption_at_tick=args.disruption_at,
        watch=not args.quiet,
    )
    return asyncio.run(run_stack(settings, options))


def _cmd_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    broker = EmbeddedBroker(port=args.port).start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap))
        say(f"embedded broker listening on {broker.bootstrap}; Ctrl-C stops it")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    finally:
        broker.stop()
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from services.ledger.run import run_ledger
    from services.ledger.settings import LedgerSettings

    return run_ledger(load_settings(LedgerSettings))


def _cmd_demo_feed(args: argparse.Namespace) -> int:
    from services.common.kafka import kafka_client_options
    from services.demo.feed import run_feed

    settings = load_settings(ServiceSettings)
    configure_logging("demo", settings.log_level, settings.log_json)
    if settings.alliance_file is None:
        raise SettingsError("VERBUND_ALLIANCE_FILE is not set (the demo feed needs the alliance)")
    alliance = load_alliance(settings.alliance_file)
    asyncio.run(
        run_feed(
            settings.require_bootstrap(),
            alliance,
            tick_seconds=args.tick,
            disruption_at_tick=args.disruption_at,
            ticks=args.ticks,
            options=kafka_client_options(settings),
            partner_topics=args.partner_topics,
        )
    )
    return 0


def _cmd_demo_alliance(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.cli.stack import write_demo_alliance

    path = write_demo_alliance(Path(args.output_dir), args.partners)
    say(str(path))
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from services.cli.watch import follow
    from services.common.kafka import kafka_client_options

    settings = load_settings(ServiceSettings)
    options = kafka_client_options(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            follow(settings.require_bootstrap(), args.what, args.from_beginning, options=options)
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verbund",
        description="Verbund: the coordination office of a supply-resilience alliance.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start broker (embedded unless configured) and all services")
    up.add_argument("--demo", action="store_true", help="also run the simulated demo alliance")
    up.add_argument("--for", dest="run_for", type=float, help="stop after this many seconds")
    up.add_argument("--partners", type=int, default=36, help="demo alliance size")
    up.add_argument("--tick", type=float, default=1.0, help="demo: seconds between exports")
    up.add_argument("--disruption-at", type=int, default=20, help="demo: tick of the disruption")
    up.add_argument("--quiet", action="store_true", help="do not print alerts as they arrive")
    up.set_defaults(handler=_cmd_up)

    broker = sub.add_parser("broker", help="run only the embedded Kafka-compatible broker")
    broker.add_argument("--port", type=int, default=0)
    broker.set_defaults(handler=_cmd_broker)

    ledger = sub.add_parser("ledger", help="run the ledger service (alliance state, shortages)")
    ledger.set_defaults(handler=_cmd_ledger)

    demo = sub.add_parser("demo", help="demo alliance tools")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True, metavar="DEMO_COMMAND")
    feed = demo_sub.add_parser("feed", help="simulate the demo alliance's partner systems")
    feed.add_argument("--tick", type=float, default=1.0)
    feed.add_argument("--disruption-at", type=int, default=20)
    feed.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    feed.add_argument(
        "--partner-topics",
        action="store_true",
        help="each partner writes to its own topic (needs the bridge), not the shared one",
    )
    feed.set_defaults(handler=_cmd_demo_feed)
    alliance = demo_sub.add_parser("alliance", help="write the demo alliance file")
    alliance.add_argument("--output-dir", default="var/demo")
    alliance.add_argument("--partners", type=int, default=36)
    alliance.set_defaults(handler=_cmd_demo_alliance)

    watch = sub.add_parser("watch", help="follow shortage alerts or dead letters")
    watch.add_argument("what", choices=["alerts", "deadletters"])
    watch.add_argument("--from-beginning", action="store_true")
    watch.set_defaults(handler=_cmd_watch)

    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands contributed by other packages (protocols, schemas, gateway)."""
    from services.cli import extensions, partner

    extensions.register(sub)
    partner.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (BrokerError, SettingsError, AllianceFileError) as exc:
        fail(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``verbund runs | head``): stop quietly, like other tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
