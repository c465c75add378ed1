"""``verbund scenario generate --materials 0`` (the CLI accepts 0 materials): a valid
scenario without purchasing pools."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from protocols.cli import EXIT_OK, register
from schemas.scenario import load_scenario


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_generate_without_materials_is_a_valid_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    argv = ["scenario", "generate", "--partners", "7", "--materials", "0", "--output", str(out)]
    code = _cli(argv)  # used to raise ScenarioFileError (a traceback for the user)
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    assert load_scenario(out).agreements.purchasing_pools == []
