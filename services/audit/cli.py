"""``verbund audit`` (the service), ``verbund audit verify`` and ``verbund audit show``."""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.audit.chain import Entry, canonical
from services.audit.query import EntryFilter, parse_time, select, summary
from services.audit.settings import AuditSettings
from services.audit.store import log_lines, verify_file
from services.audit.verify import hashable, parse_entry
from services.cli.console import fail, say, table
from services.common.settings import SettingsError, load_settings

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _log_path(args: argparse.Namespace) -> Path:
    if args.log:
        return Path(args.log)
    return load_settings(AuditSettings).audit_log_path


def _cmd_service(args: argparse.Namespace) -> int:
    from services.audit.run import run_audit

    return run_audit(load_settings(AuditSettings))


class Progress:
    """Progress of a long read on stderr: only after a second, at most twice a second."""

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.clock = clock
        self.started = clock()
        self.shown = 0.0
        self.any = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.started < 1.0 or now - self.shown < 0.5:
            return
        self.shown, self.any = now, True
        share = 100.0 * done / total if total else 100.0
        text = f"{self.label}: {share:5.1f}% ({done:,} of {total:,} bytes)"
        sys.stderr.write(("\r" + text) if self.tty else (text + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self.any and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_verify(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if not path.is_file():
        fail(f"no audit log at {path}")
        return 2
    progress = Progress(f"verifying {path}")
    try:
        result = verify_file(path, on_progress=progress)
    finally:
        progress.close()
    say(f"{path}: {result.summary()}")
    return 0 if result.ok else 1


def _entries(path: Path) -> Iterator[Entry]:
    bad = 0
    for line in log_lines(path):
        entry = parse_entry(line)
        if entry is None or not hashable(entry):
            bad += 1
            continue
        yield entry
    if bad:
        fail(f"{bad} line(s) of {path} are not audit entries; run `verbund audit verify`")


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise SettingsError(f"--{name}: not an ISO 8601 time: {text!r}") from exc


def _printable(value: object) -> str:
    """A table cell that cannot forge rows or drive the terminal: keys and payload texts come
    from partners, so control and format characters (newlines, ESC, bidi overrides) are
    shown escaped."""
    text = "" if value is None else str(value)
    return "".join(
        ch if not unicodedata.category(ch).startswith("C") else ch.encode("unicode_escape").decode()
        for ch in text
    )


def _cmd_show(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if not path.is_file():
        fail(f"no audit log at {path}")
        return 2
    since, until = _time(args.since, "since"), _time(args.until, "until")
    where = EntryFilter(
        run=args.run,
        partner=args.partner,
        since=since,
        until=until,
        kind=args.kind,
    )
    found = select(_entries(path), where)
    if args.json:
        for entry in found:
            say(canonical(entry).decode("utf-8"))
        return 0
    rows = [
        (
            entry["seq"],
            _printable(entry["at"]),
            _printable(entry["kind"]),
            _printable(
                f"{entry['source_topic']}[{entry['source_partition']}]@{entry['source_offset']}"
            ),
            _printable(entry["key"]),
            _printable(summary(entry)),
        )
        for entry in found
    ]
    if not rows:
        say("no matching audit entries")
        return 0
    say(table(["seq", "at", "kind", "source", "key", "what"], rows))
    say(f"{len(rows)} entries")
    return 0


def register(sub: Subparsers) -> None:
    audit = sub.add_parser(
        "audit",
        help="run the audit service; `audit verify` / `audit show` read the hash-chained log",
        description="Without an action: run the audit service (consumes commands, runs, "
        "decisions, orders, acknowledgements, protocol versions and access refusals).",
    )
    audit.set_defaults(handler=_cmd_service)
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION")

    verify = actions.add_parser(
        "verify", help="check the whole hash chain; exit 1 naming the first bad entry"
    )
    verify.add_argument("--log", help="audit log file (default: the VERBUND_AUDIT_LOG setting)")
    verify.set_defaults(handler=_cmd_verify)

    show = actions.add_parser("show", help="list audit entries, filtered")
    show.add_argument("--log", help="audit log file (default: the VERBUND_AUDIT_LOG setting)")
    show.add_argument("--run", help="entries about this run id")
    show.add_argument("--partner", help="entries naming this partner id")
    show.add_argument("--since", help="ISO 8601 time (UTC when no offset)")
    show.add_argument("--until", help="ISO 8601 time (UTC when no offset)")
    show.add_argument("--kind", help="entry kind, e.g. ApproveRun, OrderAcknowledged, unparseable")
    show.add_argument("--json", action="store_true", help="one JSON entry per line")
    show.set_defaults(handler=_cmd_show)
