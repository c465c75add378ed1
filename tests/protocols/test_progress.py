"""Long command-line operations report progress on stderr."""

from __future__ import annotations

import io
import time
from pathlib import Path

from protocols.cli import cmd_drill
from protocols.progress import progress

ROOT = Path(__file__).resolve().parents[2]


def test_progress_reports_start_heartbeat_and_elapsed_time() -> None:
    out = io.StringIO()
    with progress("solving big", stream=out, every=0.05):
        time.sleep(0.18)
    lines = out.getvalue().splitlines()
    assert lines[0] == "solving big ..."
    assert any(line.startswith("  ... still solving big:") for line in lines[1:-1])
    assert lines[-1].startswith("solving big: done in 0.")


def test_failed_work_is_not_reported_done() -> None:
    out = io.StringIO()
    try:
        with progress("loading x", stream=out, every=5):
            raise ValueError("broken")
    except ValueError:
        pass
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("loading x: failed after 0.")
    assert "done" not in out.getvalue()


def test_quick_work_has_no_heartbeat() -> None:
    out = io.StringIO()
    with progress("tiny", stream=out, every=5):
        pass
    assert len(out.getvalue().splitlines()) == 2


def test_drill_shows_progress_per_protocol(capsys) -> None:
    import argparse

    args = argparse.Namespace(
        scenario=ROOT / "protocols/scenarios/small.yaml",
        protocol=["hospital-material-reallocation", "bulk-material-reallocation"],
        set=[],
        variant=[],
        solver=None,
        output=None,
        library=None,
    )
    cmd_drill(args)
    err = capsys.readouterr().err
    assert "[1/2] solving" in err and "[2/2] solving" in err
    assert err.count("done in") == 3  # loading + two solves
