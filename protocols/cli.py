"""``verbund drill``, ``verbund protocol list|check`` and ``verbund scenario generate``.

Handlers are set with ``set_defaults(handler=...)`` and return an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from protocols.generate import generate_scenario_data
from protocols.loader import (
    ProtocolFileError,
    load_library,
    overdue_report,
    resolve_protocol,
)
from protocols.overrides import apply_overrides
from protocols.progress import progress
from protocols.report import compare, render
from protocols.run import RunResult, solve
from schemas.protocol import Protocol
from schemas.scenario import ScenarioFileError, load_scenario, parse_scenario
from services.common.logging import get_logger

if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = get_logger("protocols.cli")


def _out(text: str) -> None:
    sys.stdout.write(text)


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def register(
    subparsers: Subparsers, protocol_extra: Callable[[Subparsers], None] | None = None
) -> None:
    """Add ``drill``, ``protocol`` (list, check) and ``scenario`` (generate).

    ``protocol_extra`` may add further ``protocol`` subcommands (e.g. ``run``).
    """
    drill = subparsers.add_parser("drill", help="run protocols on a scenario file (no orders)")
    drill.add_argument("scenario", type=Path)
    drill.add_argument(
        "--protocol", action="append", required=True, help="library id or YAML path; repeat"
    )
    drill.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    drill.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="K=V[,K=V]",
        help="compare the first protocol with this parameter set too; repeat",
    )
    drill.add_argument("--solver", choices=["highs", "cbc"], default=None)
    drill.add_argument("--output", type=Path, default=None, help="write decision(s) as JSON")
    drill.add_argument("--library", type=Path, action="append", default=None)
    drill.set_defaults(handler=cmd_drill)

    protocol = subparsers.add_parser("protocol", help="protocol library")
    psub = protocol.add_subparsers(dest="protocol_command", required=True)
    plist = psub.add_parser("list", help="list protocols and their review state")
    plist.add_argument("--library", type=Path, action="append", default=None)
    plist.add_argument("--today", type=date.fromisoformat, default=None)
    plist.set_defaults(handler=cmd_protocol_list)
    check = psub.add_parser("check", help="validate protocol files, report overdue reviews")
    check.add_argument("files", type=Path, nargs="*")
    check.add_argument("--today", type=date.fromisoformat, default=None)
    check.add_argument("--strict", action="store_true", help="overdue reviews fail too")
    check.set_defaults(handler=cmd_protocol_check)
    if protocol_extra is not None:
        protocol_extra(psub)

    scenario = subparsers.add_parser("scenario", help="scenario files")
    ssub = scenario.add_subparsers(dest="scenario_command", required=True)
    gen = ssub.add_parser("generate", help="write a seeded random scenario")
    gen.add_argument("--partners", type=_count(1), default=50, help="at least 1")
    gen.add_argument("--materials", type=_count(0), default=50)
    gen.add_argument("--seed", type=_count(0), default=0, help="a non-negative integer")
    gen.add_argument("--output", type=Path, required=True)
    gen.set_defaults(handler=cmd_scenario_generate)


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum`` (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def _output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as an output file (checked before the work is done)."""
    parent = path.parent
    if path.is_dir():
        return f"{path} is a directory"
    if not parent.is_dir():
        return f"output directory {parent} does not exist"
    return None


def _write_output(path: Path, data: bytes) -> str | None:
    """Write ``data``; the problem (one line) when that fails.

    A regular file (or a new one) is written to a temporary file next to it and renamed
    over it: a failed write (disk full) leaves the previous file as it was, never half a
    decision. Anything else (``/dev/stdout``, a pipe) is written to directly.
    """
    if path.exists() and not path.is_file():
        try:
            path.write_bytes(data)
        except OSError as exc:
            return f"cannot write {path}: {exc.strerror or exc}"
        return None
    target = path.resolve()  # a symlink keeps pointing at the file written
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _runs(args: argparse.Namespace) -> list[tuple[str, Protocol]]:
    library = load_library(args.library) if args.library else None
    for exc in library.errors if library is not None else []:
        # a --library file that cannot be loaded is named, not hidden behind "no protocol"
        _err(f"refused: {exc}")
    protocols = [apply_overrides(resolve_protocol(p, library), args.set) for p in args.protocol]
    runs = [(f"{p.id}", p) for p in protocols]
    for i, variant in enumerate(args.variant, start=1):
        assignments = [a for a in variant.split(",") if a.strip()]
        runs.append(
            (f"{protocols[0].id}#{i}", apply_overrides(protocols[0], assignments, "--variant"))
        )
    labels = [label for label, _ in runs]
    if len(set(labels)) != len(labels):
        runs = [(f"{label}@{i}", p) for i, (label, p) in enumerate(runs, start=1)]
    return runs


def cmd_drill(args: argparse.Namespace) -> int:
    try:
        with progress(f"loading {args.scenario}"):
            scenario = load_scenario(args.scenario)
        runs = _runs(args)
    except (ScenarioFileError, ProtocolFileError, ValueError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    problem = _output_problem(args.output) if args.output is not None else None
    if problem is not None:
        _err(f"error: --output: {problem}")
        return EXIT_USAGE
    results: list[tuple[str, RunResult]] = []
    for index, (label, protocol) in enumerate(runs, start=1):
        size = f"{len(scenario.positions)} positions, {len(scenario.needs)} needs"
        with progress(f"[{index}/{len(runs)}] solving {label} on {size}"):
            result = solve(protocol, scenario, solver=args.solver, run_id=f"drill-{label}")
        log.info(
            "drill_run",
            run_id=result.record.run_id,
            protocol=protocol.id,
            status=result.decision.status.value,
            seconds=round(result.timings.total_s, 4),
        )
        results.append((label, result))
        _out(render(result, label))
    if len(results) > 1:
        _out(compare(results))
    if args.output is not None:
        payload: list[dict[str, Any]] = [
            {
                "label": label,
                "record": r.record.model_dump(mode="json"),
                "decision": r.decision.model_dump(mode="json"),
            }
            for label, r in results
        ]
        body = payload[0] if len(payload) == 1 else payload
        problem = _write_output(args.output, orjson.dumps(body, option=orjson.OPT_INDENT_2))
        if problem is not None:
            _err(f"error: --output: {problem}")
            return EXIT_USAGE
        _out(f"decision written to {args.output}\n")
    ok = all(r.decision.status.has_solution and not r.violations for _, r in results)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_protocol_list(args: argparse.Namespace) -> int:
    library = load_library(args.library)
    today = args.today or date.today()
    for pid, p in sorted(library.protocols.items()):
        state = "OVERDUE" if p.review_overdue(today) else "ok"
        _out(
            f"{pid:34} v{p.version:<3} {p.kind:22} approval={p.approval.value:17} "
            f"review due {p.review_due} [{state}]  owner: {p.owner}\n"
        )
    for exc in library.errors:
        _err(f"refused: {exc}")
    return EXIT_OK if not library.errors else EXIT_FAILED


def cmd_protocol_check(args: argparse.Namespace) -> int:
    library = load_library(args.files or None)
    today = args.today or date.today()
    for exc in library.errors:
        _err(f"refused: {exc}")
    overdue = overdue_report(library, today)
    for line in overdue:
        _out(f"review overdue: {line}\n")
    _out(f"{len(library.protocols)} protocol(s) valid, {len(library.errors)} refused\n")
    if not library.protocols and not library.errors:
        # e.g. a wrong folder: checking nothing is not a pass
        _err(f"error: no protocol files (*.yaml, *.yml) in {', '.join(map(str, args.files or []))}")
        return EXIT_FAILED
    if library.errors or (args.strict and overdue):
        return EXIT_FAILED
    return EXIT_OK


def cmd_scenario_generate(args: argparse.Namespace) -> int:
    problem = _output_problem(args.output)
    if problem is not None:
        _err(f"error: --output: {problem}")
        return EXIT_USAGE
    data = generate_scenario_data(args.partners, args.materials, args.seed)
    try:
        parse_scenario(data, "<generated>")  # the generator's output must be valid
    except ScenarioFileError as exc:
        # e.g. --materials 0 gives purchasing pools without materials (a generator bug)
        _err(
            f"error: cannot generate a valid scenario with --partners {args.partners} "
            f"--materials {args.materials} --seed {args.seed}: {exc}"
        )
        return EXIT_FAILED
    problem = _write_output(args.output, orjson.dumps(data, option=orjson.OPT_INDENT_2))
    if problem is not None:
        _err(f"error: --output: {problem}")
        return EXIT_USAGE
    _out(f"scenario with {args.partners} partners x {args.materials} materials -> {args.output}\n")
    return EXIT_OK
