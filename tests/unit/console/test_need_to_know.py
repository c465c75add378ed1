"""Need-to-know on the console: operators see k-anonymous aggregates only, partners only their
own data and the orders that involve them, coordinators what a run needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.alliance import Alliance
from services.console.api import create_app
from services.console.service import ConsoleService
from services.console.views import (
    VIEWS_BY_ROLE,
    aggregates_view,
    contributions,
    decisions_view,
    partner_order,
    partner_view,
)
from services.gateway.tokens import TokenStore, issue_token
from services.ledger.state import PartitionState
from tests.unit.console.test_views import detected, issued

REGIONS = {"a1": "BY", "a2": "BY", "a3": "BY", "b1": "NW", "b2": "NW", "b3": "NW", "lone": "HE"}
ALLIANCE = Alliance.model_validate(
    {
        "name": "k test",
        "partners": [
            {
                "id": pid,
                "name": f"Partner {pid.upper()}",
                "sector": "hospital",
                "region": region,
                "criticality": "hospital",
                "sites": [{"id": "s1", "name": "Main", "latitude": 48.0, "longitude": 11.0}],
            }
            for pid, region in REGIONS.items()
        ],
    },
    strict=False,
)
LONE_ON_HAND = 7777.0  # the lone partner's stock: must never reach an operator or another partner


def state() -> PartitionState:
    s = PartitionState(0)
    for i, partner in enumerate(REGIONS):
        on_hand = LONE_ON_HAND if partner == "lone" else 100.0 + i
        s.set_position(partner, "s1", "NACL", "pcs", on_hand, 50.0, 10.0, 1000.0 + i, f"e{i}")
    s.set_need(["a1", "n1", "s1", "NACL", "pcs", 40.0, "2030-01-05", "hospital", 1000.0, "x1"])
    return s


def test_aggregates_suppress_the_lone_region_and_its_complement() -> None:
    items = contributions([state()], [detected("lone", "NACL", "critical")], ALLIANCE)
    view = aggregates_view(items, 3)
    text = orjson.dumps(view).decode()
    for partner in REGIONS:
        assert f'"{partner}"' not in text  # no partner id anywhere
    assert str(LONE_ON_HAND - 50.0) not in text and "7727" not in text
    (table,) = view["materials"]
    assert table["by_region"]["HE"]["suppressed"] is True
    # region total minus the other regions would give HE: another figure is suppressed too
    published = [r for r, c in table["by_region"].items() if not c["suppressed"]]
    assert table["total"]["suppressed"] or len(published) <= len(table["by_region"]) - 2
    assert table["total"]["surplus"] is None or table["by_region"]["BY"]["surplus"] is None


def test_aggregates_publish_when_enough_partners() -> None:
    s = state()
    del s.positions[("lone", "s1", "NACL")]
    # a1's explicit need is the only need: a magnitude from one partner, everywhere it shows
    (table,) = aggregates_view(contributions([s], [], ALLIANCE), 3)["materials"]
    assert table["total"]["need"] is None and table["by_region"]["BY"]["need"] is None
    for partner in ("a2", "a3"):
        s.set_need([partner, "n1", "s1", "NACL", "pcs", 5.0, "2030-01-05", "hospital", 1.0, "y"])
    (table,) = aggregates_view(contributions([s], [], ALLIANCE), 3)["materials"]
    assert table["total"]["partners"] == 6
    assert table["by_region"]["BY"]["surplus"] == pytest.approx(50 + 51 + 52)
    assert table["by_region"]["BY"]["need"] == pytest.approx(50)
    assert table["by_region"]["NW"]["need"] == 0


def test_partner_view_shows_only_own_data() -> None:
    order = {
        "order_id": "order-0001",
        "run_id": "run-000000000001",
        "revision": 1,
        "kind": "transfer",
        "order": {
            "material_id": "NACL",
            "quantity": 40.0,
            "unit": "pcs",
            "from_partner": "lone",
            "from_site": "s1",
            "to_partner": "a1",
            "to_site": "s1",
            "distance_km": 120.0,
            "cost": 4800.0,
            "due": "2030-01-03",
        },
        "recipients": ["lone", "a1"],
        "responder": "lone",
        "state": "pending",
        "issued_at": "T1",
    }
    foreign = dict(order, order_id="order-0002", recipients=["b1", "b2"])
    view = partner_view(
        "a1",
        [state()],
        [detected("lone", "NACL", "critical"), detected("a1", "NACL", "watch")],
        [order, foreign],
        ALLIANCE,
    )
    assert [p["on_hand"] for p in view["positions"]] == [100.0]
    assert [n["quantity"] for n in view["needs"]] == [40.0]
    assert [s["severity"] for s in view["shortages"]] == ["watch"]
    (mine,) = view["orders"]
    assert mine["counterparty"] == "Partner LONE" and mine["quantity"] == 40.0
    assert mine["direction"] == "receive" and mine["must_answer"] is False
    text = orjson.dumps(view).decode()
    assert str(LONE_ON_HAND) not in text and "order-0002" not in text
    assert "distance_km" not in text and "4800" not in text


def test_purchase_share_shows_only_own_share_and_saving() -> None:
    order = {
        "order_id": "purchase-1",
        "kind": "purchase",
        "order": {
            "partner_id": "a1",
            "material_id": "NACL",
            "supplier_id": "sup",
            "quantity": 10.0,
            "unit_price_pooled": 2.0,
            "cost_pooled": 20.0,
            "cost_alone": 30.0,
            "saving": 10.0,
        },
        "recipients": ["a1"],
    }
    row = partner_order("a1", order, ALLIANCE)
    assert row["saving"] == 10.0 and row["cost_pooled"] == 20.0
    assert "saving" not in partner_order("b1", order, ALLIANCE)


def test_operators_get_order_counts_not_orders() -> None:
    decision = {
        "type": "DecisionPublished",
        "run_id": "run-000000000001",
        "revision": 1,
        "protocol_id": "p1",
        "at": "T2",
    }
    order = issued("o-000000001", "donor", True) | {"recipients": ["donor"], "state": "pending"}
    rows = decisions_view([decision], [order], with_orders=False)
    assert rows[0]["orders"] == [] and rows[0]["order_states"] == {"pending": 1}
    assert "donor" not in orjson.dumps(rows).decode()
    assert "board" not in VIEWS_BY_ROLE["operator"]
    assert VIEWS_BY_ROLE["partner"] == ("mine",)


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    service = ConsoleService("127.0.0.1:1", ALLIANCE, 3600, min_partners=3)
    service.replica.states[0] = state()
    service.ops.apply_alert(detected("lone", "NACL", "critical"))
    tokens = {
        "coordinator": issue_token("coord-anna", tmp_path / "coord.yaml"),
        "operator": issue_token("ops-olga", tmp_path / "ops.yaml"),
        "partner": issue_token("a1", tmp_path / "partners.yaml"),
    }
    app = create_app(
        service,
        TokenStore.load(tmp_path / "coord.yaml"),
        "http://127.0.0.1:1",
        role_tokens={
            "operator": TokenStore.load(tmp_path / "ops.yaml"),
            "partner": TokenStore.load(tmp_path / "partners.yaml"),
        },
    )
    async with TestClient(TestServer(app)) as c:
        c.tokens = tokens
        yield c


async def test_api_views_by_role(client: Any) -> None:
    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {client.tokens[role]}"}

    for path in ("/v1/board", "/v1/aggregates", "/v1/freshness", "/v1/decisions", "/v1/runs"):
        answer = await client.get(path, headers=auth("partner"))
        assert answer.status == 403, path
    answer = await client.get("/v1/board", headers=auth("operator"))
    assert answer.status == 403
    answer = await client.get("/v1/mine", headers=auth("operator"))
    assert answer.status == 403
    answer = await client.get("/v1/aggregates", headers=auth("operator"))
    body = await answer.text()
    assert answer.status == 200 and '"lone"' not in body and "7777" not in body
    answer = await client.get("/v1/mine", headers=auth("partner"))
    mine = await answer.json()
    assert mine["partner"] == "a1" and [p["on_hand"] for p in mine["positions"]] == [100.0]
    assert "7777" not in await answer.text()
    answer = await client.get("/v1/board", headers=auth("coordinator"))
    assert answer.status == 200 and "lone" in await answer.text()
    session = await (await client.get("/v1/session", headers=auth("partner"))).json()
    assert session["role"] == "partner" and session["principal"] == "a1"
