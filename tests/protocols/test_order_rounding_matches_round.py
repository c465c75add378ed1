"""Order costs are rounded as round() rounds them (a replayed run keeps its decision hash)."""

from __future__ import annotations

import pytest

from protocols.run import solve
from schemas.scenario import parse_scenario
from tests.protocols.helpers import protocol, scenario


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("quantity", "cost_per_unit"), [(10.003, 3.1415), (10.005, 2.4625), (10.007, 0.1875)]
)
def test_order_cost_is_rounded_as_before_for_decimal_quantities_and_lane_costs(
    fast: bool, quantity: float, cost_per_unit: float
) -> None:
    """Before 555af3e an order's cost was ``round(quantity * unit_cost, 6)``. With
    decimal quantities (3 places) and lane costs (4 places) the product often lies on a
    decimal tie; ``np.round`` (``rint(x * 1e6) / 1e6``) then rounds the other way, so a
    recorded run replays with another decision hash ("not identical")."""
    base = scenario([("donor", 1000.0, 0.0, 1.0, 10.0)], [("hosp", 1, quantity, 10.5)])
    data = base.model_dump(mode="json")
    data["lane_costs"] = [
        {
            "from_partner": "donor",
            "from_site": "s",
            "to_partner": "hosp",
            "to_site": "s",
            "cost_per_unit": cost_per_unit,
        }
    ]
    result = solve(protocol(), parse_scenario(data), use_fast_path=fast)
    (order,) = result.decision.transfers
    assert order.quantity == quantity
    assert order.cost == round(quantity * cost_per_unit, 6)
