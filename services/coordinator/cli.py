"""Coordinator commands: the service, ``protocol run``, ``run approve|reject|show``, ``runs``,
``replay``. Commands that act on the live system talk to the coordinator's HTTP API
(``VERBUND_COORDINATOR_URL``, ``VERBUND_COORDINATOR_TOKEN``)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from protocols.progress import progress
from protocols.run import RunRecord, replay
from schemas.errors import field_errors
from schemas.protocol import Protocol
from schemas.scenario import Scenario
from services.cli.console import fail, say, table
from services.common.settings import SettingsError, load_settings
from services.coordinator.settings import CoordinatorSettings
from services.coordinator.store import RecordError, RunStore

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


class ApiError(RuntimeError):
    pass


DEFAULT_COORDINATOR_URL = "http://127.0.0.1:8490"


def coordinator_url() -> str:
    """``VERBUND_COORDINATOR_URL`` without a trailing slash; :class:`SettingsError` (a usage
    error) when it is not an ``http(s)://host[:port][/path]`` URL."""
    raw = os.environ.get("VERBUND_COORDINATOR_URL", DEFAULT_COORDINATOR_URL)
    base = raw.strip().rstrip("/")
    problem = _url_problem(base)
    if problem is not None:
        raise SettingsError(
            f"VERBUND_COORDINATOR_URL={raw!r} is not usable: {problem} "
            f"(expected e.g. {DEFAULT_COORDINATOR_URL})"
        )
    return base


def _url_problem(url: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0..65535
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.query or parts.fragment:
        return "it must not have a query or fragment"
    return None


def _segment(value: str, what: str = "run id") -> str:
    """One path segment, quoted; an empty one is a usage error."""
    if not value.strip():
        raise SettingsError(f"the {what} must not be empty")
    return urllib.parse.quote(value, safe="")


def call_api(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the coordinator; ``path`` must be quoted already (see :func:`_segment`)."""
    base = coordinator_url()
    token = os.environ.get("VERBUND_COORDINATOR_TOKEN", "").strip()
    if not token:
        raise SettingsError("VERBUND_COORDINATOR_TOKEN is not set (a coordinator's bearer token)")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in token):
        # never echo it: a token is a secret, even a mangled one
        raise SettingsError(
            "VERBUND_COORDINATOR_TOKEN is not a bearer token (spaces, line breaks or "
            "non-ASCII characters inside it)"
        )
    data = json.dumps(body).encode() if body is not None else None
    try:
        request = urllib.request.Request(
            base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("message", detail)
        raise ApiError(f"{exc.code}: {' '.join(str(detail).split())}") from exc
    except urllib.error.URLError as exc:
        raise ApiError(f"coordinator at {base} is not reachable: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ApiError(f"coordinator at {base}: connection failed: {exc!r}") from exc
    except ValueError as exc:  # http.client.InvalidURL and the like
        detail = str(exc) if token not in str(exc) else type(exc).__name__
        raise SettingsError(f"cannot call the coordinator at {base}: {detail}") from exc
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(f"coordinator at {base} answered something that is not JSON") from exc


def _show(run: dict[str, Any]) -> None:
    say(f"run {run['run_id']}  protocol {run['protocol_id']} v{run['protocol_version']}")
    say(f"  state     : {run['state']} (revision {run['revision']})  {run.get('detail', '')}")
    say(f"  trigger   : {run['trigger']}")
    say(f"  approvals : {', '.join(run['approvals']) or '-'} of {run['approvals_needed']} needed")
    decision = run.get("decision")
    if decision:
        say(
            f"  decision  : {decision['status']}, unmet by tier {decision['unmet_by_tier']}, "
            f"cost {_cost(decision.get('total_cost'))}"
        )
    orders = [o for o in run.get("order_list", []) if o["revision"] == run["revision"]]
    if orders:
        rows = [
            [
                o["kind"],
                o["responder"],
                ", ".join(o["informed"]),
                o["order"].get("material_id") or o["order"].get("capability", ""),
                o["order"].get("quantity") or o["order"].get("hours"),
                o["state"],
            ]
            for o in orders
        ]
        say(table(["kind", "must answer", "informed", "item", "quantity", "state"], rows))


def _cost(value: object) -> str:
    """A decision's total cost; the API withholds it (``null``) from those who may not see
    prices (a purchasing pool's total, for anyone but coordinators)."""
    if value is None:
        return "hidden"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.1f}"
    return str(value)


def cmd_service(args: argparse.Namespace) -> int:
    from services.common.runner import run_until_signalled
    from services.coordinator.run import run_coordinator

    return run_until_signalled(run_coordinator(load_settings(CoordinatorSettings)))


def cmd_protocol_run(args: argparse.Namespace) -> int:
    try:
        name = _segment(args.name, "protocol id")
        run = call_api("POST", f"/v1/protocols/{name}/runs", {"reason": args.reason or ""})
        if not run.get("started", True):
            say(f"a run for this scope is already in progress: {run['run_id']}")
        deadline = time.monotonic() + args.wait
        while run["state"] in ("solving",) and time.monotonic() < deadline:
            time.sleep(0.2)
            run = call_api("GET", f"/v1/runs/{_segment(run['run_id'])}")
        if run["state"] != "awaiting_approval":
            run = call_api("GET", f"/v1/runs/{_segment(run['run_id'])}")
    except ApiError as exc:
        fail(str(exc))
        return 1
    _show(run)
    if run["state"] in ("failed", "rejected"):
        return 1
    if run["state"] == "solving":
        fail(f"run {run['run_id']} still solving after --wait {args.wait:g} s")
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        run_id = _segment(args.run_id)
        if args.action == "show":
            run = call_api("GET", f"/v1/runs/{run_id}")
        else:
            run = call_api(
                "POST", f"/v1/runs/{run_id}/{args.action}", {"reason": args.reason or ""}
            )
            if run["state"] == "solving":
                time.sleep(0.5)
            run = call_api("GET", f"/v1/runs/{run_id}")
    except ApiError as exc:
        fail(str(exc))
        return 1
    _show(run)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    try:
        runs = call_api("GET", "/v1/runs")
    except ApiError as exc:
        fail(str(exc))
        return 1
    rows = [
        [
            r["run_id"],
            r["protocol_id"],
            r["state"],
            r["revision"],
            r["triggered_at"][:19],
            r["detail"][:60],
        ]
        for r in runs
    ]
    say(table(["run", "protocol", "state", "rev", "triggered (UTC)", "detail"], rows))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings = load_settings(CoordinatorSettings)
    store = RunStore(Path(args.runs_dir) if args.runs_dir else settings.runs_dir())
    try:
        data = store.load(args.run_id, args.revision)
        record = RunRecord.model_validate(data["record"])
        protocol = Protocol.model_validate(data["protocol"], strict=False)
        snapshot = Scenario.model_validate(data["snapshot"], strict=False)
    except (OSError, RecordError) as exc:
        fail(str(exc))
        return 2
    except ValidationError as exc:
        fail(f"run {args.run_id}: recorded file unreadable: {'; '.join(field_errors(exc)[:3])}")
        return 2
    say(
        f"replaying {record.run_id} revision {data['revision']}: protocol {record.protocol_id} "
        f"v{record.protocol_version}, solver {record.solver} {record.solver_version}, "
        f"{len(snapshot.positions)} positions, {len(snapshot.needs)} needs ..."
    )
    with progress(f"solving {record.run_id} again"):
        report = replay(record, protocol, snapshot)
    if report.identical:
        say(f"identical: decision hash {report.decision_hash}")
        return 0
    say("DIFFERENT:")
    for difference in report.differences:
        say(f"  {difference}")
    return 1


def register_protocol_run(psub: Subparsers) -> None:
    run = psub.add_parser("run", help="trigger a protocol run in the live system")
    run.add_argument("name", help="protocol id")
    run.add_argument("--reason", default="")
    run.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the decision")
    run.set_defaults(handler=cmd_protocol_run)


def register(sub: Subparsers) -> None:
    service = sub.add_parser("coordinator", help="run the coordinator service")
    service.set_defaults(handler=cmd_service)

    run = sub.add_parser("run", help="approve, reject or show a protocol run")
    run.add_argument("action", choices=["approve", "reject", "show"])
    run.add_argument("run_id")
    run.add_argument("--reason", default="")
    run.set_defaults(handler=cmd_run)

    runs = sub.add_parser("runs", help="list protocol runs")
    runs.set_defaults(handler=cmd_runs)

    replay_cmd = sub.add_parser("replay", help="solve a recorded run again and compare")
    replay_cmd.add_argument("run_id")
    replay_cmd.add_argument("--revision", type=int, default=None)
    replay_cmd.add_argument("--runs-dir", default=None)
    replay_cmd.set_defaults(handler=cmd_replay)
