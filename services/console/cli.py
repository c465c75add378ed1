"""``verbund console`` (the operations web page) and ``verbund status`` (the same at a glance
in the terminal, read from the console's JSON API: ``VERBUND_CONSOLE_URL``, token from
``VERBUND_COORDINATOR_TOKEN``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.cli.console import fail, say, table
from services.common.settings import load_settings
from services.console.settings import ConsoleSettings, StatusSettings
from services.console.views import SEVERITIES

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


class ConsoleUnavailable(RuntimeError):
    """The console could not answer; the message is one readable line."""


def fetch(base: str, token: str, path: str, timeout: float = 10.0) -> Any:
    url = base.rstrip("/") + path
    try:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("not an http:// or https:// URL")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    except ValueError as exc:
        raise ConsoleUnavailable(
            f"console URL {base!r} is not usable ({exc}); expected e.g. http://127.0.0.1:8500"
        ) from exc
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("message", detail)
        if exc.code == 401:
            raise ConsoleUnavailable(
                f"console at {base} refused the token ({detail}); set VERBUND_COORDINATOR_TOKEN "
                "to a coordinator token"
            ) from exc
        raise ConsoleUnavailable(
            f"console at {base}: {path} answered {exc.code}: {detail}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConsoleUnavailable(f"console at {base} is not reachable: {reason}") from exc
    except ValueError as exc:  # e.g. a token that cannot be sent in a header (never echoed)
        raise ConsoleUnavailable(
            f"console at {base}: cannot send the request ({type(exc).__name__}); does "
            "VERBUND_COORDINATOR_TOKEN contain spaces, line breaks or non-ASCII characters?"
        ) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ConsoleUnavailable(f"console at {base}: {path} did not answer JSON") from exc


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _since(at: Any, now: float) -> str:
    try:
        ts = datetime.fromisoformat(str(at)).timestamp()
    except ValueError:
        return str(at or "")
    return format_age(max(0.0, now - ts)) + " ago"


def render_status(
    board: Mapping[str, Any],
    freshness: Mapping[str, Any],
    runs: list[Mapping[str, Any]],
    now: float,
) -> str:
    """The alliance at a glance: open shortages by severity and material, stale partners,
    running protocols (pure: the views as the console's JSON API returns them)."""
    out: list[str] = []
    totals = board["totals"]
    order = list(reversed(SEVERITIES))  # critical first
    out.append(
        f"Open shortages: {board['open']}  ("
        + ", ".join(f"{totals.get(s, 0)} {s}" for s in order)
        + ")"
    )
    if board["by_material"]:
        rows = [
            [row["material"], *(row["by_severity"].get(s, 0) for s in order), row["count"]]
            for row in board["by_material"]
        ]
        out.append(table(["material", *order, "total"], rows))
    out.append("")
    stale = [p for p in freshness["partners"] if p["stale"]]
    out.append(
        f"Stale partners: {len(stale)} of {freshness['total']}  "
        f"(no data for more than {format_age(freshness['stale_after_seconds'])})"
    )
    if stale:
        rows = [
            [
                p["partner"],
                p["region"],
                p["sector"],
                format_age(p["age_seconds"]),
                _when(p["last_seen"]),
            ]
            for p in stale
        ]
        out.append(table(["partner", "region", "sector", "data age", "last data"], rows))
    out.append("")
    active = [r for r in runs if r["active"]]
    out.append(f"Running protocols: {len(active)}")
    if active:
        rows = [
            [
                r["run_id"],
                r["protocol_id"],
                r["state"],
                f"{len(r['approvals'])}/{r['approvals_needed']}",
                r["revision"],
                _since(r["at"], now),
            ]
            for r in active
        ]
        out.append(table(["run", "protocol", "state", "approvals", "revision", "updated"], rows))
    return "\n".join(out)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings(StatusSettings)
    base = args.url or settings.console_url
    if not settings.coordinator_token:
        fail("VERBUND_COORDINATOR_TOKEN is not set (a coordinator's bearer token)")
        return 2
    token = settings.coordinator_token
    try:
        board = fetch(base, token, "/v1/board")
        freshness = fetch(base, token, "/v1/freshness")
        runs = fetch(base, token, "/v1/runs")
    except ConsoleUnavailable as exc:
        fail(str(exc))
        return 2
    say(render_status(board, freshness, runs, time.time()))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from services.common.runner import run_until_signalled
    from services.console.run import run_console

    return run_until_signalled(run_console(load_settings(ConsoleSettings)))


def register(sub: Subparsers) -> None:
    console = sub.add_parser("console", help="run the operations dashboard (web page)")
    console.set_defaults(handler=cmd_console)
    status = sub.add_parser(
        "status", help="the alliance at a glance: open shortages, stale partners, running runs"
    )
    status.add_argument("--url", help="console URL (default: $VERBUND_CONSOLE_URL)")
    status.set_defaults(handler=cmd_status)
