"""Principals, roles and tokens: issue, list, rotate, revoke, expiry, legacy files, the CLI,
and that a rotated, revoked or expired token stops working at the HTTP edge at once."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from services.cli.main import main
from services.common.identity import (
    AuthenticationFailed,
    CredentialsError,
    IdentityStore,
    Role,
    build_identities,
    hash_token_id,
    issue,
    list_credentials,
    read_credentials,
    revoke,
    rotate,
    utcnow,
)
from services.common.tokens import issue_token
from tests.unit.access_apps import build


def test_issue_stores_only_the_hash_and_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    token, credential = issue(path, "klinikum-nord", Role.PARTNER)
    text = path.read_text()
    assert token not in text and credential.token_hash in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    entry = yaml.safe_load(text)[credential.token_hash]
    assert entry["principal"] == "klinikum-nord" and entry["role"] == "partner"
    assert entry["token_id"] == credential.token_id == hash_token_id(token)
    principal = build_identities(path).authenticate(token)
    assert (principal.id, principal.role, principal.token_id) == (
        "klinikum-nord",
        Role.PARTNER,
        credential.token_id,
    )
    assert token.startswith("vbd_") and len(token) > 40


def test_one_role_per_principal_and_valid_names(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    issue(path, "coord-anna", Role.COORDINATOR)
    issue(path, "coord-anna", "coordinator")  # a second token of the same principal: fine
    with pytest.raises(CredentialsError, match="already holds role coordinator"):
        issue(path, "coord-anna", Role.AUDITOR)
    with pytest.raises(CredentialsError, match="not a valid principal id"):
        issue(path, "Coord Anna", Role.COORDINATOR)
    with pytest.raises(CredentialsError, match="not a role"):
        issue(path, "x-admin", "admin")
    assert len(list_credentials(path, "coord-anna")) == 2


def test_expiry(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    now = utcnow()
    token, credential = issue(path, "ops-olga", Role.OPERATOR, expires_days=1, now=now)
    store = build_identities(path, reload_interval=0)
    assert store.authenticate(token, now + timedelta(hours=23)).id == "ops-olga"
    with pytest.raises(AuthenticationFailed) as failed:
        store.authenticate(token, now + timedelta(days=1))
    assert failed.value.reason == "expired" and failed.value.principal is not None
    assert failed.value.principal.id == "ops-olga"
    [listed] = [c.listing(now + timedelta(days=2)) for c in list_credentials(path)]
    assert listed["expired"] is True and "token_hash" not in listed
    assert token not in json.dumps(listed) and credential.token_hash not in json.dumps(listed)


def test_rotate_with_and_without_grace(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    now = utcnow()
    old_token, old = issue(path, "klinikum-nord", Role.PARTNER, expires_days=90, now=now)
    store = build_identities(path, reload_interval=0)

    new_token, new, kept = rotate(path, old.token_id, grace_hours=2, now=now)
    assert new.principal == "klinikum-nord" and new.role is Role.PARTNER
    assert new.expires is not None and new.expires - new.created == timedelta(days=90)
    assert kept is not None and kept.expires == now + timedelta(hours=2)
    assert store.authenticate(old_token, now + timedelta(hours=1)).id == "klinikum-nord"
    assert store.authenticate(new_token, now + timedelta(hours=1)).id == "klinikum-nord"
    with pytest.raises(AuthenticationFailed, match="expired"):
        store.authenticate(old_token, now + timedelta(hours=3))

    newest_token, _, gone = rotate(path, new.token_id, now=now)  # no grace: revoked at once
    assert gone is None
    with pytest.raises(AuthenticationFailed, match="unknown or revoked"):
        store.authenticate(new_token, now)
    assert store.authenticate(newest_token, now).id == "klinikum-nord"
    with pytest.raises(CredentialsError, match="no token with id"):
        rotate(path, "000000000000")


def test_revoke_by_token_id_and_by_principal(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    anna_1, c1 = issue(path, "coord-anna", Role.COORDINATOR)
    anna_2, _ = issue(path, "coord-anna", Role.COORDINATOR)
    ben, _ = issue(path, "coord-ben", Role.COORDINATOR)
    store = build_identities(path, reload_interval=0)
    assert [c.token_id for c in revoke(path, token_id=c1.token_id)] == [c1.token_id]
    with pytest.raises(AuthenticationFailed):
        store.authenticate(anna_1)
    assert store.authenticate(anna_2).id == "coord-anna"
    assert len(revoke(path, principal="coord-anna")) == 1
    with pytest.raises(AuthenticationFailed):
        store.authenticate(anna_2)
    assert store.authenticate(ben).id == "coord-ben"
    assert revoke(path, principal="nobody") == []
    with pytest.raises(CredentialsError):
        revoke(path)


def test_legacy_token_files_keep_their_roles(tmp_path: Path) -> None:
    partner = issue_token("klinikum-nord", tmp_path / "gateway-tokens.yaml")
    coordinator = issue_token("coord-anna", tmp_path / "coordinator-tokens.yaml")
    store = build_identities(
        tmp_path / "credentials.yaml",  # does not exist yet: fine
        [
            (tmp_path / "gateway-tokens.yaml", Role.PARTNER),
            (tmp_path / "coordinator-tokens.yaml", Role.COORDINATOR),
            (tmp_path / "operator-tokens.yaml", Role.OPERATOR),  # missing: picked up later
        ],
        reload_interval=0,
    )
    assert store.authenticate(partner).role is Role.PARTNER
    assert store.authenticate(coordinator).role is Role.COORDINATOR
    operator = issue_token("ops-olga", tmp_path / "operator-tokens.yaml")
    assert store.authenticate(operator).role is Role.OPERATOR
    auditor, _ = issue(tmp_path / "credentials.yaml", "audit-otto", Role.AUDITOR)
    assert store.authenticate(auditor).role is Role.AUDITOR  # the new file is picked up
    assert store.problems == []


def test_malformed_credentials_fail_fast_and_keep_the_last_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    token, _ = issue(path, "coord-anna", Role.COORDINATOR)
    store = build_identities(path, reload_interval=0)
    good = path.read_text()
    path.write_text("sha256:abc: {principal: x}\n")
    assert store.authenticate(token).id == "coord-anna"  # last good credentials in use
    assert store.problems and "credentials file" in store.problems[0]
    with pytest.raises(CredentialsError):
        build_identities(path)
    path.write_text(good.replace("role: coordinator", "role: superuser"))
    with pytest.raises(CredentialsError, match="not a role"):
        read_credentials(path)


def test_bearer_header_forms(tmp_path: Path) -> None:
    store = IdentityStore()
    for header, reason in (
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer vbd_x", "unknown"),
    ):
        with pytest.raises(AuthenticationFailed) as failed:
            store.authenticate_header(header)
        assert failed.value.reason == reason
        assert "vbd_x" not in failed.value.message


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["access", *args])
    return code, capsys.readouterr().out


def test_cli_issue_list_rotate_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "credentials.yaml")
    code, out = _cli(capsys, "issue", "klinikum-nord", "--credentials-file", path)
    assert code == 0 and "role partner" in out  # no --role: a partner, as before roles
    partner_token = out.strip().splitlines()[-1]
    code, out = _cli(
        capsys,
        "issue",
        "coord-anna",
        "--role",
        "coordinator",
        "--expires-days",
        "30",
        "--credentials-file",
        path,
    )
    assert code == 0 and "expires" in out
    code, out = _cli(capsys, "list", "--json", "--credentials-file", path)
    listed = json.loads(out)
    assert {(r["principal"], r["role"]) for r in listed} == {
        ("klinikum-nord", "partner"),
        ("coord-anna", "coordinator"),
    }
    assert partner_token not in out and "sha256" not in out
    code, out = _cli(capsys, "list", "--principal", "coord-anna", "--credentials-file", path)
    assert code == 0 and "coord-anna" in out and "klinikum-nord" not in out
    [anna] = [r for r in listed if r["principal"] == "coord-anna"]
    code, out = _cli(
        capsys, "rotate", anna["token_id"], "--grace-hours", "1", "--credentials-file", path
    )
    assert code == 0 and "stays valid until" in out
    code, out = _cli(capsys, "revoke", "--principal", "coord-anna", "--credentials-file", path)
    assert code == 0 and out.count("revoked token") == 2
    [partner] = [r for r in listed if r["principal"] == "klinikum-nord"]
    code, out = _cli(capsys, "revoke", partner["token_id"], "--credentials-file", path)
    assert code == 0
    assert list_credentials(Path(path)) == []


def test_cli_legacy_tokens_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway-tokens.yaml"
    code, _ = _cli(capsys, "issue", "klinikum-nord", "--tokens-file", str(path))
    assert code == 0 and "klinikum-nord" in yaml.safe_load(path.read_text())
    code, _ = _cli(capsys, "revoke", "klinikum-nord", "--tokens-file", str(path))
    assert code == 0 and yaml.safe_load(path.read_text()) == {}


async def test_revoked_rotated_and_expired_tokens_are_refused_over_http(tmp_path: Path) -> None:
    setup = build(tmp_path)
    auth = {"Authorization": f"Bearer {setup.tokens['operator']}"}
    async with TestClient(TestServer(setup.apps["console"])) as client:

        async def status(headers: dict[str, str]) -> Any:
            return (await client.get("/v1/session", headers=headers)).status

        assert await status(auth) == 200
        [credential] = list_credentials(setup.credentials, "ops-olga")
        new_token, _, _ = rotate(setup.credentials, credential.token_id)
        assert await status(auth) == 401  # the old token, at once (no restart)
        assert await status({"Authorization": f"Bearer {new_token}"}) == 200
        revoke(setup.credentials, principal="ops-olga")
        assert await status({"Authorization": f"Bearer {new_token}"}) == 401
        assert await status({"Authorization": f"Bearer {setup.tokens['expired']}"}) == 401
    reasons = [e.reason for e in setup.refusals.take()]
    assert reasons == ["unknown or revoked token"] * 2 + ["token expired"]


@pytest.mark.parametrize("bad", ["coord-anna\n", "Coord", "a", "x y", "../etc"])
def test_principal_ids_are_checked_whole(bad: str) -> None:
    from services.common.identity import CredentialsError, check_principal_id

    with pytest.raises(CredentialsError, match="not a valid principal id"):
        check_principal_id(bad)
    assert check_principal_id("coord-anna") == "coord-anna"


async def test_a_token_that_is_not_utf8_is_an_unknown_token_on_every_service(
    tmp_path: Path,
) -> None:
    """Raw header bytes that are not UTF-8 reach the handlers as surrogates: a 401 naming
    the refusal, not a 500 from hashing the token."""
    setup = build(tmp_path)
    for name, method, path in (
        ("gateway", "POST", "/v1/events"),
        ("console", "GET", "/v1/session"),
        ("coordinator", "GET", "/v1/runs"),
    ):
        async with TestServer(setup.apps[name]) as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 2\r\n"
                + b"Authorization: Bearer vbd_\xff\xfe\r\n\r\n{}"
            )
            await writer.drain()
            answer = await reader.read()
            writer.close()
            status_line = answer.split(b"\r\n", 1)[0]
            assert b" 401 " in status_line, (name, answer[:300])
            assert b"unknown or revoked token" in answer, (name, answer[:300])
