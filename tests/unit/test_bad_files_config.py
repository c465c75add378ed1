"""Alliance, credentials and scenario files that are not UTF-8, nested too deeply (or empty) are
refused with each loader's own error, naming the file and the problem; services that re-read
them keep what they had (the bridge its partners, the identity store the last good tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from schemas.alliance import AllianceFileError, load_alliance
from schemas.scenario import ScenarioFileError, load_scenario
from services.bridge.service import PartnerBridge, _stamp
from services.bridge.settings import BridgeSettings
from services.common.identity import (
    CredentialsError,
    Role,
    build_identities,
    issue,
    read_credentials,
)
from tests.unit.access_apps import build

PARTNER: dict[str, Any] = {
    "id": "klinik-a",
    "name": "Klinik A",
    "sector": "hospital",
    "region": "DE-BY",
    "criticality": "hospital",
    "sites": [{"id": "s1", "name": "Main", "latitude": 48.1, "longitude": 11.5}],
}
DEEP = "[" * 1000 + "]" * 1000
LATIN1 = "# Müller\n".encode("latin-1")
BAD_FILES = [
    pytest.param(LATIN1 + b"name: x\n", "not UTF-8 text (byte 0xfc on line", id="latin-1"),
    pytest.param(f"name: x\npartners: {DEEP}\n".encode(), "nested too deeply", id="deep"),
]


@pytest.mark.parametrize(
    ("content", "problem"), [*BAD_FILES, pytest.param(b"", "the file is empty", id="empty")]
)
def test_alliance_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "alliance.yaml"
    path.write_bytes(content)
    with pytest.raises(AllianceFileError) as info:
        load_alliance(path)
    assert str(info.value).startswith(f"{path}: cannot read alliance file: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(("content", "problem"), BAD_FILES)
async def test_bridge_keeps_its_partners_when_the_alliance_file_breaks(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "alliance.yaml"
    path.write_text(yaml.safe_dump({"name": "T", "partners": [PARTNER]}), encoding="utf-8")
    bridge = PartnerBridge(BridgeSettings(alliance_file=path), "unused:9092", path)
    bridge.members = frozenset({PARTNER["id"]})
    bridge._stamp = _stamp(path)
    path.write_bytes(content)
    await bridge.refresh()  # logged, not raised
    assert bridge.members == frozenset({PARTNER["id"]})
    assert bridge._stamp == _stamp(path)  # not re-read until it changes again


@pytest.mark.parametrize(("content", "problem"), BAD_FILES)
def test_credentials_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_bytes(content)
    with pytest.raises(CredentialsError) as info:
        read_credentials(path)
    assert str(info.value).startswith(f"credentials file {path}: cannot read: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(("content", "problem"), BAD_FILES)
def test_a_bad_credentials_edit_keeps_the_last_good_credentials(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "credentials.yaml"
    token, _ = issue(path, "coord-anna", Role.COORDINATOR)
    store = build_identities(path, reload_interval=0)
    path.write_bytes(path.read_bytes() + b"\n" + content)  # a bad edit
    assert store.authenticate(token).id == "coord-anna"
    assert len(store.problems) == 1 and problem in store.problems[0]
    with pytest.raises(CredentialsError):  # at start-up: fail fast
        build_identities(path)


async def test_requests_still_authenticate_after_a_bad_credentials_edit(tmp_path: Path) -> None:
    setup = build(tmp_path)
    setup.credentials.write_bytes(setup.credentials.read_bytes() + b"\n" + LATIN1)
    auth = {"Authorization": f"Bearer {setup.tokens['coordinator']}"}
    async with TestClient(TestServer(setup.apps["coordinator"])) as client:
        answer = await client.get("/v1/runs", headers=auth)
        assert answer.status == 200, await answer.text()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("s.yaml", LATIN1, "not UTF-8 text (byte 0xfc on line 1)"),
        ("s.json", b'{"name": "M\xfcller"}', "not UTF-8 text (byte 0xfc on line 1)"),
        ("s.yaml", f"positions: {DEEP}\n".encode(), "nested too deeply"),
        ("s.yaml", b"# nothing yet\n", "the file is empty"),
        ("s.yaml", b"", "the file is empty"),
        (
            "s.json",
            b'{"name": "a", "as_of": "2026-11-23", "partners": [], "name": "b"}',
            "the key 'name' is given twice in one object",
        ),
        (
            "s.json",
            b'{"needs": [{"need_id": "N-1", "quantity": 5, "quantity": 50}]}',
            "the key 'quantity' is given twice in one object (the object that starts"
            " 'need_id': 'N-1')",
        ),
        ("s.json", b'{"positions": [{"on_hand": NaN}]}', "NaN is not a JSON number"),
        ("s.json", b'{"positions": [{"on_hand": 1e400}]}', "1e400 is too large for a number"),
        (
            "s.json",
            b'{"partners": [' + b'{"id": "p"},' * 2000 + b'{"id": "q"}], "partners": []}',
            "the key 'partners' is given twice in one object",
        ),
        ("s.json", b'{"name": "a",\n "as_of": }', "line 2 column"),
    ],
    ids=[
        "yaml-latin-1",
        "json-latin-1",
        "yaml-deep",
        "yaml-comment-only",
        "yaml-empty",
        "json-repeated-top-key",
        "json-repeated-nested-key",
        "json-nan",
        "json-overflow",
        "json-repeated-long-key",
        "json-syntax",
    ],
)
def test_scenario_file(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: cannot read scenario file: ")
    assert problem in str(info.value)
    assert len(str(info.value)) < 300 + len(str(path))  # names the problem, not the data


def test_a_legacy_tokens_file_not_in_utf8_or_nested_too_deeply_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    from services.common.tokens import TokenFileError, read_token_file

    latin = tmp_path / "tokens.yaml"
    latin.write_bytes("klinikum-süd:\n  - sha256:00\n".encode("latin-1"))
    with pytest.raises(TokenFileError, match=r"tokens\.yaml: cannot read"):
        read_token_file(latin)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=r"deep\.yaml"):
        read_token_file(deep)
