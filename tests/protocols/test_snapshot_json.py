"""The snapshot hash's canonical JSON: fast form equal to the model_dump reference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import BaseModel, field_serializer

from protocols.generate import generate_scenario, generate_scenario_data
from schemas.scenario import Scenario, ScenarioNeed, _check_flat, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "protocols" / "scenarios"


@pytest.mark.parametrize("name", ["small.yaml", "medium.json", "large.json"])
def test_shipped_scenarios_serialise_as_the_reference(name: str) -> None:
    sc = load_scenario(SCENARIOS / name)
    assert sc.to_json_bytes() == sc.reference_json()


@pytest.mark.parametrize("seed", range(4))
def test_generated_scenarios_with_need_criticality_serialise_as_the_reference(seed: int) -> None:
    data = generate_scenario_data(12, 6, seed=seed)
    # needs with their own criticality, integral and fractional quantities, unicode ids
    for k, need in enumerate(data["needs"]):
        if k % 3 == 0:
            need["criticality"] = ["hospital", "normal", "critical_infrastructure"][k % 3]
        if k % 4 == 1:
            need["quantity"] = 1e-7 + k
    data["name"] = "Übung Süd"
    sc = parse_scenario(data)
    assert sc.to_json_bytes() == sc.reference_json()


def test_snapshot_hash_changes_with_a_position() -> None:
    sc = generate_scenario(5, 3, seed=1)
    first = sc.positions[0]
    bumped = first.model_copy(update={"on_hand": first.on_hand + 1})
    changed = sc.model_copy(update={"positions": [bumped, *sc.positions[1:]]})
    assert (
        hashlib.sha256(changed.to_json_bytes()).digest()
        != hashlib.sha256(sc.to_json_bytes()).digest()
    )
    assert changed.to_json_bytes() == changed.reference_json()


def test_a_custom_serialiser_on_a_flat_model_is_refused() -> None:
    class Rounded(ScenarioNeed):
        @field_serializer("quantity")
        def _round(self, value: float) -> float:
            return round(value)

    with pytest.raises(TypeError, match="custom serialiser"):
        _check_flat(Rounded)
    assert issubclass(Scenario, BaseModel)
