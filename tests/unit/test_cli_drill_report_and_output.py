"""``verbund drill``: truncated report sections say so, a broken ``--library``
is named, and ``--output`` never leaves a half-written file behind."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from protocols.cli import EXIT_OK, EXIT_USAGE, register
from protocols.loader import resolve_protocol
from protocols.report import render
from protocols.run import solve
from schemas.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "protocols" / "scenarios" / "small.yaml"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_render_says_when_transfers_are_left_out() -> None:
    result = solve(resolve_protocol("hospital-material-reallocation"), load_scenario(SMALL))
    transfers = result.decision.transfers * 15  # 60 transfers: more than the 40 shown
    result.decision = result.decision.model_copy(update={"transfers": transfers})
    text = render(result, max_orders=40)
    shown = [line for line in text.splitlines() if line.startswith("  NACL-500ML:")]
    assert len(shown) == 40
    assert "20 more" in text  # the 20 hidden transfers are not silently dropped


def test_render_says_when_partners_are_left_out() -> None:
    result = solve(resolve_protocol("hospital-material-reallocation"), load_scenario(SMALL))
    text = render(result, max_orders=2)
    section = text.split("fulfilment by partner:\n")[1].split("transfers")[0]
    assert "1 more" in section  # three partners, two shown


def test_drill_names_the_broken_library_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "lib.yaml"
    broken.write_text("id: x\ntitle: [\n", encoding="utf-8")
    argv = ["drill", str(SMALL), "--protocol", "hospital-material-reallocation"]
    code = _cli([*argv, "--library", str(broken)])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{broken}" in err and "invalid YAML" in err


def test_drill_names_a_missing_library_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    argv = ["drill", str(SMALL), "--protocol", "hospital-material-reallocation"]
    code = _cli([*argv, "--library", str(missing)])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{missing}" in err and "No such file" in err


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from services.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def test_failed_output_write_keeps_the_previous_file(tmp_path: Path) -> None:
    """The disk fills up while the decision is written (here: a file size limit)."""
    out = tmp_path / "decision.json"
    argv = ["drill", str(SMALL), "--protocol", "hospital-material-reallocation"]
    assert _cli([*argv, "--output", str(out)]) == EXIT_OK
    before = out.read_bytes()
    orjson.loads(before)
    limit = str(len(before) // 2)
    again = [*argv, "--set", "optimization.fairness=false", "--output", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED, limit, *again],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "error: --output: cannot write" in done.stderr
    assert "Traceback" not in done.stderr
    assert out.read_bytes() == before  # not truncated, not half a new decision
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decision.json"]


def test_protocol_check_of_a_folder_without_protocols_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a protocol")
    code = _cli(["protocol", "check", str(tmp_path)])
    assert code != EXIT_OK
    assert f"no protocol files (*.yaml, *.yml) in {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--variant", "fairness", "--variant 'fairness': expected key=value"),
        ("--set", "fairness", "--set 'fairness': expected key=value"),
        ("--variant", "max_distance_km=-5", "<hospital-material-reallocation with --variant>"),
    ],
)
def test_a_bad_override_names_its_option(
    capsys: pytest.CaptureFixture[str], option: str, value: str, problem: str
) -> None:
    argv = ["drill", str(SMALL), "--protocol", "hospital-material-reallocation", option, value]
    assert _cli(argv) != EXIT_OK
    assert problem in capsys.readouterr().err
