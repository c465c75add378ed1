"""``verbund partner onboard ID`` without a broker: refusals and the printed commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.cli.main import main
from services.common.kafka_acls import onboarding_commands

PARTNER = "klinik-sued"


@pytest.fixture
def alliance_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    partner = {
        "id": PARTNER,
        "name": "Klinik Sued",
        "sector": "hospital",
        "region": "DE-BY",
        "criticality": "hospital",
        "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
    }
    path = tmp_path / "alliance.yaml"
    path.write_text(yaml.safe_dump({"name": "Test", "partners": [partner]}), encoding="utf-8")
    monkeypatch.delenv("VERBUND_SETTINGS_FILE", raising=False)
    monkeypatch.delenv("VERBUND_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("VERBUND_ALLIANCE_FILE", str(path))
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("verbund: error: ")
    return line


@pytest.mark.parametrize("bad", ["Klinik Sued", "k", "klinik_sued", "klinik.sued", "1klinik"])
def test_an_invalid_id_is_refused_in_one_line(
    bad: str, alliance_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["partner", "onboard", bad, "--no-create"]) == 2
    assert "is not a valid partner id" in _error_line(capsys)


def test_a_partner_not_in_the_alliance_is_refused(
    alliance_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["partner", "onboard", "werk-nord", "--no-create"]) == 2
    line = _error_line(capsys)
    assert "'werk-nord' is not a partner in the alliance file" in line
    assert str(alliance_file) in line


def test_no_alliance_file_is_refused(
    alliance_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VERBUND_ALLIANCE_FILE")
    assert main(["partner", "onboard", PARTNER, "--no-create"]) == 2
    assert "VERBUND_ALLIANCE_FILE is not set" in _error_line(capsys)


def test_creating_topics_needs_a_broker(
    alliance_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["partner", "onboard", PARTNER]) == 2
    assert "VERBUND_KAFKA_BOOTSTRAP is not set" in _error_line(capsys)


def test_the_printed_commands_are_the_acl_table(
    alliance_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["partner", "onboard", PARTNER, "--no-create", "--bootstrap-server", "kafka:9095"]
    assert main([*argv, "--command-config", "/tmp/admin.properties"]) == 0
    out = capsys.readouterr().out.splitlines()
    commands = [line for line in out if not line.startswith("#")]
    assert commands == onboarding_commands(PARTNER, "kafka:9095", "/tmp/admin.properties")
    assert any("verbund.partner.klinik-sued.events" in line for line in out if "#" in line)
