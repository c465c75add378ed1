"""Protocol and configuration files: a key given twice, an impossible date, a version that
is not a whole number of a sane size."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.loader import ProtocolFileError, load_protocol
from schemas.config_files import UnreadableFile, read_data

SHIPPED = (
    Path(__file__).resolve().parents[2] / "protocols/library/hospital-material-reallocation.yaml"
)


# -- configuration / protocol files -------------------------------------------------------------
def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("role: viewer\nrole: admin\n", encoding="utf-8")
    with pytest.raises(UnreadableFile, match="role"):
        read_data(path)


def test_protocol_with_a_repeated_approval_key_is_refused(tmp_path: Path) -> None:
    """A second ``approval:`` further down silently wins: a reviewed two-person protocol
    becomes ``automatic`` without any error."""
    path = tmp_path / "p.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8") + "approval: automatic\n", encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="approval"):
        load_protocol(path)


def test_protocol_version_beyond_64_bit_is_refused_at_load(tmp_path: Path) -> None:
    """Loads fine today, then every run of it fails: Protocol.to_json_bytes (the protocol
    hash, computed when a run starts) raises TypeError 'Integer exceeds 64-bit range'."""
    path = tmp_path / "p.yaml"
    huge = "version: 100000000000000000000"
    text = SHIPPED.read_text(encoding="utf-8").replace("version: 3", huge)
    path.write_text(text, encoding="utf-8")
    try:
        protocol = load_protocol(path)
    except ProtocolFileError as exc:
        assert any(p.startswith("version") for p in exc.problems)
        return
    protocol.to_json_bytes()


def test_protocol_version_true_is_not_taken_for_1(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    text = SHIPPED.read_text(encoding="utf-8").replace("version: 3", "version: true")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="version"):
        load_protocol(path)


def test_impossible_date_in_protocol_names_field_or_line(tmp_path: Path) -> None:
    """``last_reviewed: 2026-02-30`` gives only '(file): cannot read: day is out of range
    for month' - neither the field nor the line."""
    path = tmp_path / "p.yaml"
    text = SHIPPED.read_text(encoding="utf-8").replace("2026-09-15", "2026-02-30")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol(path)
    message = str(caught.value)
    assert "last_reviewed" in message or "line 12" in message, message
