"""`verbund audit verify` / `show` exit codes and output, and progress on stderr."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from services.audit.cli import Progress, register
from tests.unit.audit.helpers import entries, lines


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(lines(entries(6))))
    return path


def test_verify_intact_and_tampered(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("audit", "verify", "--log", str(log)) == 0
    assert "intact: 6 entries, last seq 6" in capsys.readouterr().out
    data = log.read_bytes().splitlines(keepends=True)
    del data[3]
    log.write_bytes(b"".join(data))
    assert _run("audit", "verify", "--log", str(log)) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "TAMPERED at line 4 (seq 5): removed: seq 4 missing" in out[0]


def test_verify_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("audit", "verify", "--log", str(tmp_path / "nope.log")) == 2
    assert "no audit log" in capsys.readouterr().err


def test_verify_uses_the_setting(
    log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERBUND_AUDIT_LOG", str(log))
    assert _run("audit", "verify") == 0
    assert str(log) in capsys.readouterr().out


def test_show_table_and_json(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("audit", "show", "--log", str(log), "--kind", "ApproveRun") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["seq", "at", "kind", "source", "key", "what"]
    assert out[-1] == "6 entries"
    assert _run("audit", "show", "--log", str(log), "--json", "--since", "2026-09-21T14:13:24") == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in shown] == [5, 6]
    assert _run("audit", "show", "--log", str(log), "--run", "run-none00000000") == 0
    assert "no matching" in capsys.readouterr().out


def test_progress_only_for_long_reads(capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    progress = Progress("verifying x", clock=lambda: now[0])
    progress(10, 100)
    assert capsys.readouterr().err == ""
    now[0] = 1.5
    progress(50, 100)
    progress(60, 100)  # throttled
    now[0] = 2.5
    progress(100, 100)
    progress.close()
    err = capsys.readouterr().err
    assert "50.0%" in err and "60.0%" not in err and "100.0%" in err
