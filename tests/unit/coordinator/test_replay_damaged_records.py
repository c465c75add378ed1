"""``verbund replay`` on a damaged run folder: one line naming the file, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.main import main


@pytest.mark.parametrize(
    ("files", "argv_extra", "expected"),
    [
        ({"r1.json": b'{"record": {"run_id": '}, [], "invalid JSON"),
        ({"r1.json": b"{}"}, [], "not a run record"),
        ({"r1.json": b"[1, 2]"}, [], "not a run record"),
        ({"rfoo.json": b"{}"}, [], "has no recorded revision"),
        ({"r1.json": b"{}"}, ["--revision", "7"], "has no recorded revision 7"),
        (
            {"r1.json": b'{"record": {}, "protocol": {}, "snapshot": {}}'},
            [],
            "recorded file unreadable",
        ),
    ],
)
def test_a_damaged_run_record_is_named_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, bytes],
    argv_extra: list[str],
    expected: str,
) -> None:
    folder = tmp_path / "run-abc"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    code = main(["replay", "run-abc", "--runs-dir", str(tmp_path), *argv_extra])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert expected in captured.err, captured.err
