"""The coordinator API: what operators and auditors see of runs and decisions (k-partner rule,
generic texts for failed runs), and 400 answers that are JSON whatever the body held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.coordinator.core import Run
from tests.protocols.helpers import protocol
from tests.unit.access_apps import FOUR_EYES_PROTOCOL, AppClient, build, row_of
from tests.unit.console.test_decision_figures import (
    SECRETS,
    decide,
    infeasible_protocol,
    infeasible_scenario,
    one_needy_scenario,
    solver_error,
    tiered_scenario,
)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AppClient]:
    setup = build(tmp_path)
    async with TestClient(TestServer(setup.apps["coordinator"])) as client:
        yield AppClient(setup, client)


def _listed(rows: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    return row_of(rows, run.run_id)


async def test_one_needy_partner_figure_only_to_coordinators(api: AppClient) -> None:
    run, _ = decide(api.setup.coordinator.core, protocol(), one_needy_scenario())
    path = f"/v1/runs/{run.run_id}"
    full = await api.get("coordinator", path)
    assert full["decision"]["requested_by_tier"] == {"1": 100.0}
    assert full["decision"]["unmet_by_tier"] == {"1": 0.0}
    shown = await api.get("auditor", path)
    assert shown["decision"]["requested_by_tier"] == {"1": None}
    assert shown["decision"]["unmet_by_tier"] == {"1": None}
    assert shown["decision"]["status"] == "optimal" and shown["order_list"]


async def test_tiers_with_k_partners_are_shown_the_rest_suppressed(api: AppClient) -> None:
    run, _ = decide(api.setup.coordinator.core, protocol(), tiered_scenario())
    path = f"/v1/runs/{run.run_id}"
    full = (await api.get("coordinator", path))["decision"]
    assert full["requested_by_tier"] == {"1": 30.0, "2": 77.0, "3": 20.0}
    shown = (await api.get("auditor", path))["decision"]
    # tier 2 is one partner's need; tier 1 goes too (else: total - tier 1 - tier 3 = tier 2)
    assert shown["requested_by_tier"] == {"1": None, "2": None, "3": 20.0}
    assert shown["unmet_by_tier"] == {"1": None, "2": None, "3": 0.0}
    assert "77" not in orjson.dumps(shown).decode()


async def test_k_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBUND_AGGREGATE_MIN_PARTNERS", "5")
    setup = build(tmp_path)
    run, _ = decide(setup.coordinator.core, protocol(), tiered_scenario())
    async with TestClient(TestServer(setup.apps["coordinator"])) as client:
        api = AppClient(setup, client)
        shown = (await api.get("auditor", f"/v1/runs/{run.run_id}"))["decision"]
    assert set(shown["requested_by_tier"].values()) == {None}  # tier 3 has only 4 partners


async def test_failed_runs_show_generic_texts_to_operators_and_auditors(api: AppClient) -> None:
    core = api.setup.coordinator.core
    failed, _ = decide(core, infeasible_protocol(), infeasible_scenario())
    crashed, _ = solver_error(core)
    assert "requires 500" in failed.detail  # services/coordinator/core.py: the explanation
    runs = await api.get("coordinator", "/v1/runs")
    assert _listed(runs, failed)["detail"] == failed.detail
    full = await api.get("coordinator", f"/v1/runs/{failed.run_id}")
    assert "at most 100 pcs" in full["decision"]["explanation"]
    for role in ("operator", "auditor"):
        runs = await api.get(role, "/v1/runs")
        assert _listed(runs, failed)["detail"] == (
            "failed: the decision is infeasible (details for coordinators)"
        )
        assert _listed(runs, crashed)["detail"] == (
            "failed: solver error (details for coordinators)"
        )
        text = orjson.dumps(runs).decode()
        for secret in SECRETS:
            assert secret not in text, (role, secret)
    shown = await api.get("auditor", f"/v1/runs/{failed.run_id}")
    assert shown["decision"]["status"] == "infeasible"
    assert shown["decision"]["explanation"].startswith("infeasible: ")
    text = orjson.dumps(shown).decode()
    for secret in SECRETS:
        assert secret not in text, secret


# -- 400 answers are JSON -----------------------------------------------------------------------
BAD_BODIES = [
    rb'{"reason":"\q"}',  # an invalid escape: the parser's message holds a backslash
    b'{"reason": "x"',
    b'{"reason": "\xff"}',  # not UTF-8
    b'"quote" "',
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_invalid_json_gets_a_json_400(api: AppClient, body: bytes) -> None:
    api.setup.coordinator.core.active_scopes.clear()
    run = api.setup.coordinator.core.trigger(FOUR_EYES_PROTOCOL, "test", 1_800_000_000.0)[0]
    headers = api.headers("coordinator") | {"Content-Type": "application/json"}
    for method, path in (
        ("POST", f"/v1/protocols/{FOUR_EYES_PROTOCOL}/runs"),
        ("POST", f"/v1/runs/{run.run_id}/reject"),
        ("PUT", "/v1/purchasing/quotes/sup-1/NACL"),
    ):
        answer = await api.client.request(method, path, data=body, headers=headers)
        assert answer.status == 400, (method, path)
        assert answer.content_type == "application/json"
        error = orjson.loads(await answer.read())
        assert error["status"] == 400 and error["reason"] == "invalid_json", (method, path)
        assert error["message"]
    assert run.state.value == "awaiting_approval"  # nothing happened


async def test_a_body_that_is_not_an_object_gets_a_json_400(api: AppClient) -> None:
    headers = api.headers("coordinator") | {"Content-Type": "application/json"}
    answer = await api.client.post(
        f"/v1/protocols/{FOUR_EYES_PROTOCOL}/runs", data=b'["a"]', headers=headers
    )
    assert answer.status == 400
    assert orjson.loads(await answer.read())["reason"] == "invalid_body"
