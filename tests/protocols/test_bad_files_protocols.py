"""Protocol files that are not UTF-8, nested too deeply, or reviewed in the far future are
refused with the file and the problem; the other protocols of the library still load."""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from protocols.cli import register
from protocols.loader import LIBRARY, ProtocolFileError, load_library, load_protocol
from schemas import protocol as protocol_module
from schemas.protocol import MAX_REVIEW_AHEAD_DAYS, Protocol

GOOD: dict[str, Any] = json.loads(
    json.dumps(yaml.safe_load((LIBRARY / "capacity-sharing.yaml").read_text()), default=str)
)
DEEP = "[" * 1000 + "]" * 1000


def _good(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(GOOD)), **changes}


def _library_dir(tmp_path: Path, bad_name: str, bad: bytes) -> Path:
    (tmp_path / "a-good.yaml").write_text(yaml.safe_dump(_good()), encoding="utf-8")
    (tmp_path / bad_name).write_bytes(bad)
    return tmp_path


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="verbund")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


LATIN1 = yaml.safe_dump(_good(id="latin", owner="Müller"), allow_unicode=True).encode("latin-1")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (LATIN1, "(file): cannot read: not UTF-8 text (byte 0xfc on line"),
        (f"id: x\ntriggers: {DEEP}\n".encode(), "(file): cannot read: nested too deeply"),
        (b"# to be written\n", "(file): cannot read: the file is empty"),
    ],
    ids=["latin-1", "deep", "comment-only"],
)
def test_unreadable_file_is_refused_and_the_good_protocols_load(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    directory = _library_dir(tmp_path, "b-bad.yaml", content)
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(directory / "b-bad.yaml")
    assert str(directory / "b-bad.yaml") in str(info.value) and problem in str(info.value)

    lib = load_library([directory])
    assert list(lib.protocols) == ["capacity-sharing"]
    assert len(lib.errors) == 1 and problem in str(lib.errors[0])


def test_protocol_check_reports_an_unreadable_file_instead_of_crashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _library_dir(tmp_path, "b-latin1.yaml", LATIN1)
    assert _cli(["protocol", "check", str(directory)]) == 1
    captured = capsys.readouterr()
    assert "1 protocol(s) valid, 1 refused" in captured.out
    assert "b-latin1.yaml" in captured.err and "not UTF-8" in captured.err


@pytest.mark.parametrize("reviewed", ["9999-12-01", "9999-12-31", "3026-01-01"])
def test_far_future_review_date_is_refused(tmp_path: Path, reviewed: str) -> None:
    path = tmp_path / "future.yaml"
    path.write_text(yaml.safe_dump(_good(last_reviewed=reviewed)))
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(path)
    message = str(info.value)
    assert str(path) in message and "last_reviewed" in message and "in the future" in message


def test_review_date_within_a_year_is_accepted() -> None:
    soon = date.today() + timedelta(days=MAX_REVIEW_AHEAD_DAYS)
    protocol = Protocol.model_validate(_good(last_reviewed=soon.isoformat()), strict=False)
    assert protocol.review_due == soon + timedelta(days=protocol.review_interval_days)
    later = (soon + timedelta(days=1)).isoformat()
    with pytest.raises(ValueError, match="in the future"):
        Protocol.model_validate(_good(last_reviewed=later), strict=False)


def test_review_due_past_the_last_date_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # even where the "not far ahead" rule would let the date through, review_due must exist
    monkeypatch.setattr(protocol_module, "MAX_REVIEW_AHEAD_DAYS", 10**7)
    data = _good(last_reviewed="9999-12-01", review_interval_days=180)
    with pytest.raises(ValueError) as info:
        Protocol.model_validate(data, strict=False)
    assert "review_interval_days" in str(info.value)
    assert "past the last representable date" in str(info.value)


def test_protocol_list_and_check_survive_a_far_future_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _library_dir(
        tmp_path,
        "b-future.yaml",
        yaml.safe_dump(_good(id="far", last_reviewed="9999-12-01")).encode(),
    )
    assert _cli(["protocol", "list", "--library", str(directory)]) == 1
    listed = capsys.readouterr()
    assert "capacity-sharing" in listed.out and "b-future.yaml" in listed.err
    assert _cli(["protocol", "check", str(directory)]) == 1
    checked = capsys.readouterr()
    assert "1 protocol(s) valid, 1 refused" in checked.out and "last_reviewed" in checked.err
