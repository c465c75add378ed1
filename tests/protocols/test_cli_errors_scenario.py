"""``verbund scenario generate`` and ``verbund drill``: bad arguments and unreadable scenario
files end in a one-line error and exit status 2, not a traceback."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from protocols.cli import EXIT_OK, EXIT_USAGE, register

SCENARIOS = Path(__file__).resolve().parents[2] / "protocols" / "scenarios"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``; it must fail as a usage error; the error output."""
    try:
        code = _cli(argv)
    except SystemExit as exit_:  # argparse refuses the argument itself
        code = int(exit_.code or 0)
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--partners", "0", "argument --partners: must be at least 1, not 0"),
        ("--partners", "-3", "argument --partners: must be at least 1, not -3"),
        ("--materials", "-1", "argument --materials: must be at least 0, not -1"),
        ("--seed", "-1", "argument --seed: must be at least 0, not -1"),
        ("--partners", "many", "argument --partners: 'many' is not an integer"),
    ],
)
def test_generate_refuses_bad_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, problem: str
) -> None:
    out = tmp_path / "s.json"
    err = _usage_error(["scenario", "generate", option, value, "--output", str(out)], capsys)
    assert problem in err
    assert not out.exists()


def test_generate_refuses_a_missing_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "s.json"
    argv = ["scenario", "generate", "--partners", "2", "--materials", "2", "--output", str(out)]
    err = _usage_error(argv, capsys)
    assert err.strip() == f"error: --output: output directory {out.parent} does not exist"


def test_generate_refuses_a_directory_as_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["scenario", "generate", "--partners", "2", "--output", str(tmp_path)]
    assert f"{tmp_path} is a directory" in _usage_error(argv, capsys)


def test_generate_still_writes_a_small_scenario(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    argv = ["scenario", "generate", "--partners", "1", "--materials", "0", "--output", str(out)]
    assert _cli(argv) == EXIT_OK
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("name: Müller\n".encode("latin-1"), "not UTF-8 text (byte 0xfc on line 1)"),
        (("positions: " + "[" * 1000 + "]" * 1000 + "\n").encode(), "nested too deeply"),
    ],
    ids=["latin-1", "deep"],
)
def test_drill_names_an_unreadable_scenario_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_bytes(content)
    err = _usage_error(["drill", str(scenario), "--protocol", "capacity-sharing"], capsys)
    [line] = [line for line in err.splitlines() if "error" in line]  # besides the progress
    assert line.startswith(f"error: {scenario}: cannot read scenario file: ") and problem in line


def test_drill_refuses_a_missing_output_directory_before_solving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "decision.json"
    argv = [
        "drill",
        str(SCENARIOS / "small.yaml"),
        "--protocol",
        "capacity-sharing",
        "--output",
        str(out),
    ]
    err = _usage_error(argv, capsys)
    assert f"output directory {out.parent} does not exist" in err
    assert "solving" not in err  # refused before the work, not after it
