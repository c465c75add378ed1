"""``verbund run|runs|protocol run`` against a real coordinator API: odd run ids, a bad
``VERBUND_COORDINATOR_URL`` and figures withheld from auditors end in one line, not a
traceback (exit 2 for usage errors, 1 for what the coordinator refused)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from protocols.run import solve
from schemas.protocol import ApprovalPolicy
from services.cli.main import main
from tests.unit.access_apps import FOUR_EYES_PROTOCOL, Setup
from tests.unit.coordinator.test_live_capacity_purchasing import (
    NOW,
    PURCHASING,
    _book,
    demand,
    quote,
    replica_after,
    snapshot_of,
)


async def _verbund(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    url: str,
    token: str = "vbd_unused",
) -> tuple[int, str, str]:
    """Run the CLI in a thread (it calls the API synchronously while this loop serves it)."""
    monkeypatch.setenv("VERBUND_COORDINATOR_URL", url)
    monkeypatch.setenv("VERBUND_COORDINATOR_TOKEN", token)
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _solved_purchasing_run(setup: Setup) -> str:
    core = setup.coordinator.core
    run, started, _ = core.trigger(FOUR_EYES_PROTOCOL, "test", NOW)
    assert started
    run_id = run.run_id
    assert run.protocol.id == FOUR_EYES_PROTOCOL  # joint purchasing: its cost is a price
    core.approve(run_id, "coord-anna", "t1", NOW)
    core.approve(run_id, "coord-ben", "t2", NOW)
    replica = replica_after([demand("klinik-a", 600), demand("klinik-b", 500)])
    snap = snapshot_of(
        replica, PURCHASING, run.adjustments, _book(quote("medsupply", [(0, 2.0), (1000, 1.5)]))
    )
    core.solved(run_id, solve(run.protocol, snap, run_id=run_id), 0.01, NOW)
    return run_id


async def test_auditor_sees_a_purchasing_run_with_its_cost_hidden(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, client = coordinator_api
    run_id = _solved_purchasing_run(setup)
    url = str(client.make_url(""))
    code, out, err = await _verbund(
        monkeypatch, capsys, ["run", "show", run_id], url, setup.tokens["auditor"]
    )
    assert code == 0, err
    assert f"run {run_id}" in out and "cost hidden" in out
    code, out, err = await _verbund(
        monkeypatch, capsys, ["run", "show", run_id], url, setup.tokens["coordinator"]
    )
    assert code == 0, err
    assert "cost hidden" not in out and "cost " in out


@pytest.mark.parametrize("run_id", ["a b", "run-1?x=1", "run/../../v1/runs", "ü\x01"])
async def test_an_odd_run_id_is_sent_quoted_and_answered_not_found(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_id: str,
) -> None:
    setup, client = coordinator_api
    url = str(client.make_url(""))
    code, out, err = await _verbund(
        monkeypatch, capsys, ["run", "show", run_id], url, setup.tokens["coordinator"]
    )
    assert code == 1 and out == ""
    assert err.startswith("verbund: error: 404") and len(err.splitlines()) == 1, err


async def test_an_empty_run_id_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await _verbund(monkeypatch, capsys, ["run", "approve", " "], "http://x")
    assert code == 2 and err == "verbund: error: the run id must not be empty\n"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:8490", "the scheme must be http:// or https://"),
        ("127.0.0.1:8490", "the scheme must be http:// or https://"),
        ("http://", "it names no host"),
        ("http://127.0.0.1:port", "Port could not be cast"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://coordinator host:8490", "spaces or control characters"),
        ("http://127.0.0.1:8490/?x=1", "must not have a query"),
    ],
)
@pytest.mark.parametrize("argv", [["run", "show", "run-1"], ["runs"], ["protocol", "run", "p"]])
async def test_a_bad_coordinator_url_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    url: str,
    problem: str,
) -> None:
    code, out, err = await _verbund(monkeypatch, capsys, argv, url)
    assert code == 2 and out == ""
    assert err.startswith(f"verbund: error: VERBUND_COORDINATOR_URL={url!r} is not usable: ")
    assert problem in err and len(err.splitlines()) == 1


async def test_a_coordinator_url_with_a_trailing_slash_and_path_prefix_works(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, client = coordinator_api
    url = str(client.make_url("/")) + "/"
    code, out, err = await _verbund(monkeypatch, capsys, ["runs"], url, setup.tokens["auditor"])
    assert code == 0, err
    assert out.startswith("run ")


@pytest.mark.parametrize("token", ["vbd_a\nsecret", "vbd_a secret", "vbd_äsecret"])
async def test_a_mangled_token_is_a_usage_error_and_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    code, out, err = await _verbund(monkeypatch, capsys, ["runs"], "http://127.0.0.1:1", token)
    assert code == 2 and out == ""
    assert err.startswith("verbund: error: VERBUND_COORDINATOR_TOKEN is not a bearer token")
    assert "secret" not in err and len(err.splitlines()) == 1


async def test_a_token_with_surrounding_whitespace_still_authenticates(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup, client = coordinator_api
    token = f"  {setup.tokens['auditor']}\n"
    code, _, err = await _verbund(monkeypatch, capsys, ["runs"], str(client.make_url("")), token)
    assert code == 0, err


async def test_protocol_run_exits_1_when_the_run_fails_or_is_still_solving(
    coordinator_api: tuple[Setup, TestClient[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A script calling ``verbund protocol run`` must see a failed run (or no decision
    within ``--wait``) in the exit code, not only in the printed state."""
    setup, client = coordinator_api
    core = setup.coordinator.core
    base = core.protocols[FOUR_EYES_PROTOCOL]
    auto = base.model_copy(update={"id": "auto-test", "approval": ApprovalPolicy.AUTOMATIC})
    core.protocols["auto-test"] = auto
    url, token = str(client.make_url("")), setup.tokens["coordinator"]
    argv = ["protocol", "run", "auto-test", "--wait", "0.3"]

    code, out, err = await _verbund(monkeypatch, capsys, argv, url, token)
    assert code == 1, (out, err)
    assert "still solving" in err
    [run_id] = [r for r, run in core.runs.items() if run.protocol.id == "auto-test"]
    core.failed(run_id, "solver error: test", NOW)
    core.active_scopes.clear()

    def fail_at_once(run_id: str, requested_at: float) -> None:
        core.failed(run_id, "solver error: test", NOW)

    setup.coordinator._schedule_solve = fail_at_once  # type: ignore[method-assign]
    code, out, err = await _verbund(monkeypatch, capsys, argv, url, token)
    assert code == 1, (out, err)
    assert "failed" in out
