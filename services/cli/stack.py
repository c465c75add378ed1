"""``verbund up``: broker (embedded unless configured), every service as its own process,
and optionally the demo alliance; stops everything cleanly on Ctrl-C, SIGTERM or ``--for``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.cli.console import say
from services.cli.watch import follow
from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import ensure_topics
from services.common.settings import ServiceSettings
from services.common.topics import TopicSpec, partner_topics
from services.demo.alliance import demo_alliance
from services.gateway.tokens import issue_token


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        finally:
            log.close()

    async def stop(self, timeout: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@dataclass
class StackOptions:
    demo: bool = True
    run_for: float | None = None
    partners: int = 36
    tick_seconds: float = 1.0
    disruption_at_tick: int = 20
    watch: bool = True


def write_demo_alliance(directory: Path, partners: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "alliance.yaml"
    alliance = demo_alliance(partners)
    path.write_text(
        yaml.safe_dump(alliance.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path


async def run_stack(settings: ServiceSettings, options: StackOptions) -> int:
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.kafka_bootstrap:
            bootstrap = settings.kafka_bootstrap
        else:
            broker = EmbeddedBroker(log_path=logs / "broker.log").start()
            bootstrap = broker.bootstrap
        await ensure_topics(bootstrap)
        env = dict(os.environ)
        env.update(VERBUND_KAFKA_BOOTSTRAP=bootstrap, VERBUND_DATA_DIR=str(data_dir))
        alliance_file = settings.alliance_file
        if options.demo and alliance_file is None:
            alliance_file = write_demo_alliance(data_dir / "demo", options.partners)
        names = ["ledger", "gateway", "coordinator", "audit", "console"]
        if alliance_file is not None:
            env["VERBUND_ALLIANCE_FILE"] = str(alliance_file)
            # the partner bridge serves the alliance's partners; their own topics are created
            # before the demo's partner systems write to them
            await ensure_topics(bootstrap, _partner_topics(alliance_file))
            names.append("bridge")
        ports = {name: free_port() for name in names}
        tokens_file = data_dir / "gateway-tokens.yaml"
        demo_token = _demo_token(alliance_file, tokens_file) if options.demo else None
        if not tokens_file.exists():
            tokens_file.write_text("{}\n", encoding="utf-8")
        coordinator_tokens = data_dir / "coordinator-tokens.yaml"
        coordinator_token = issue_token("coord-demo", coordinator_tokens) if options.demo else None
        if not coordinator_tokens.exists():
            coordinator_tokens.write_text("{}\n", encoding="utf-8")
        env["VERBUND_COORDINATOR_TOKENS_FILE"] = str(coordinator_tokens)
        cli = [sys.executable, "-m", "services.cli.main"]
        service_env: dict[str, dict[str, object]] = {
            "ledger": {"VERBUND_METRICS_PORT": ports["ledger"]},
            "gateway": {
                "VERBUND_GATEWAY_PORT": ports["gateway"],
                "VERBUND_GATEWAY_TOKENS_FILE": tokens_file,
            },
            "coordinator": {"VERBUND_COORDINATOR_PORT": ports["coordinator"]},
            "audit": {"VERBUND_METRICS_PORT": ports["audit"]},
            "console": {
                "VERBUND_CONSOLE_PORT": ports["console"],
                "VERBUND_COORDINATOR_URL": f"http://127.0.0.1:{ports['coordinator']}",
            },
        }
        if "bridge" in ports:
            service_env["bridge"] = {"VERBUND_METRICS_PORT": ports["bridge"]}
        for name, extra in service_env.items():
            children.append(Child(name, [*cli, name], _with(env, **extra), logs / f"{name}.log"))
        if options.demo:
            children.append(
                Child(
                    "demo",
                    [
                        *cli,
                        "demo",
                        "feed",
                        "--tick",
                        str(options.tick_seconds),
                        "--disruption-at",
                        str(options.disruption_at_tick),
                        # as real partners: each to its own topic, through the bridge
                        "--partner-topics",
                    ],
                    # the demo also sets the purchasing pool's supplier quotes, as coord-demo
                    _with(
                        env,
                        VERBUND_COORDINATOR_URL=f"http://127.0.0.1:{ports['coordinator']}",
                        VERBUND_COORDINATOR_TOKEN=coordinator_token or "",
                    ),
                    logs / "demo.log",
                )
            )
        for child in children:
            await child.start()
        _banner(
            bootstrap,
            broker is not None,
            ports,
            alliance_file,
            logs,
            options,
            demo_token,
            coordinator_token,
        )
        watcher = (
            asyncio.create_task(follow(bootstrap, "alerts", stop=stop)) if options.watch else None
        )
        exits = [asyncio.create_task(_exit_of(c)) for c in children]
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()), *exits]
        if options.run_for:
            waiters.append(asyncio.ensure_future(asyncio.sleep(options.run_for)))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        failed = [t.result() for t in exits if t in done]
        stop.set()
        if watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher, 5)
        for waiter in waiters:
            waiter.cancel()
        if failed:
            say(f"service {failed[0]} stopped unexpectedly; see {logs}/{failed[0]}.log")
            return 1
        return 0
    finally:
        say("stopping services ...")
        await asyncio.gather(*(child.stop() for child in reversed(children)))
        if broker is not None:
            broker.stop()
        say("stopped.")


def _partner_topics(alliance_file: Path) -> list[TopicSpec]:
    from schemas.alliance import load_alliance

    partners = load_alliance(alliance_file).partners
    return [spec for partner in partners for spec in partner_topics(partner.id)]


def _demo_token(alliance_file: Path | None, tokens_file: Path) -> tuple[str, str] | None:
    """Issue a gateway token for the first demo partner, so the banner can show a request."""
    from schemas.alliance import load_alliance

    if alliance_file is None:
        return None
    partner = load_alliance(alliance_file).partners[0].id
    return partner, issue_token(partner, tokens_file)


async def _exit_of(child: Child) -> str:
    assert child.process is not None
    await child.process.wait()
    return child.name


def _with(env: dict[str, str], **extra: object) -> dict[str, str]:
    merged = dict(env)
    merged.update({k: str(v) for k, v in extra.items()})
    return merged


def _banner(
    bootstrap: str,
    embedded: bool,
    ports: dict[str, int],
    alliance_file: Path | None,
    logs: Path,
    options: StackOptions,
    demo_token: tuple[str, str] | None,
    coordinator_token: str | None,
) -> None:
    kind = "embedded tansu broker (memory only)" if embedded else "configured Kafka cluster"
    say("Verbund is running.")
    say(f"  Kafka bootstrap : {bootstrap}  ({kind})")
    for name, port in ports.items():
        say(f"  {name + ' metrics':<19}: http://127.0.0.1:{port}/metrics")
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    say(f"  HTTP gateway    : {gateway}/v1/events  (health: {gateway}/healthz)")
    if "bridge" in ports:
        say(
            "  partner topics  : verbund.partner.<id>.events (partners write) and "
            "verbund.partner.<id>.orders (partners read), served by the bridge"
        )
    if demo_token:
        partner, token = demo_token
        say(f"  demo partner    : {partner}, bearer token {token}")
        say(
            f"    curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
            f"--data @event.json {gateway}/v1/events"
        )
    coordinator = f"http://127.0.0.1:{ports['coordinator']}"
    say(f"  coordinator API : {coordinator}/v1/runs")
    if coordinator_token:
        say(f"  coordinator     : coord-demo, bearer token {coordinator_token}")
        say(
            f"    export VERBUND_COORDINATOR_URL={coordinator} "
            f"VERBUND_COORDINATOR_TOKEN={coordinator_token}"
        )
        say("    verbund runs; verbund run approve RUN_ID; verbund protocol run PROTOCOL")
    console = f"http://127.0.0.1:{ports['console']}"
    say(f"  operations page : {console}/  (sign in with a coordinator token)")
    token = coordinator_token or "..."
    say(f"    VERBUND_CONSOLE_URL={console} VERBUND_COORDINATOR_TOKEN={token} verbund status")
    if alliance_file:
        say(f"  alliance file   : {alliance_file}")
    say(f"  service logs    : {logs}/")
    say(f"  watch alerts    : VERBUND_KAFKA_BOOTSTRAP={bootstrap} verbund watch alerts")
    say(f"  dead letters    : VERBUND_KAFKA_BOOTSTRAP={bootstrap} verbund watch deadletters")
    if options.demo:
        say(
            f"  demo            : {options.partners} partners, one stock export per site every "
            f"{options.tick_seconds:g}s; supply disruption at tick {options.disruption_at_tick}"
        )
    say("Press Ctrl-C to stop. Shortage alerts follow:")
