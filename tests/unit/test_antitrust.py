"""Antitrust guardrails: partner events cannot carry competition-sensitive data (each
forbidden field is rejected, and the error names it); prices exist only in purchasing pools;
every protocol declares its purpose and every run records it with the data it used and who
received the result."""

from __future__ import annotations

import copy
import json
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from schemas.coordination import RunUpdated
from schemas.events import PARTNER_EVENT_TYPES, parse_partner_event
from schemas.protocol import Protocol
from schemas.scenario import Purchasing, Scenario
from services.coordinator.core import Coordinator
from tests.protocols.helpers import protocol, scenario

# Competition-sensitive data a partner system might try to send (ERP exports carry them).
FORBIDDEN = (
    "price",
    "unit_price",
    "list_price",
    "purchase_price",
    "cost_price",
    "margin",
    "gross_margin",
    "discount",
    "customer",
    "customer_id",
    "customer_name",
    "customers",
    "sales",
    "sales_volume",
    "revenue",
    "turnover",
    "supplier_terms",
    "market_share",
)

EVENTS: dict[str, dict[str, Any]] = {
    "StockReported": {
        "type": "StockReported",
        "positions": [
            {
                "site_id": "s1",
                "material_id": "NACL",
                "unit": "pcs",
                "on_hand": 10,
                "safety_stock": 5,
                "daily_consumption": 1,
            }
        ],
    },
    "NeedReported": {
        "type": "NeedReported",
        "need_id": "n1",
        "site_id": "s1",
        "material_id": "NACL",
        "unit": "pcs",
        "quantity": 5,
        "needed_by": "2030-01-01",
        "criticality": "hospital",
    },
    "CapacityOffered": {
        "type": "CapacityOffered",
        "offer_id": "o1",
        "site_id": "s1",
        "capability": "sterilisation",
        "hours": 10,
        "available_from": "2030-01-01T00:00:00Z",
        "available_until": "2030-01-02T00:00:00Z",
    },
    "CapacityNeeded": {
        "type": "CapacityNeeded",
        "need_id": "c1",
        "site_id": "s1",
        "capability": "sterilisation",
        "hours": 10,
        "needed_by": "2030-01-01",
        "criticality": "hospital",
    },
    "PurchaseDemandReported": {
        "type": "PurchaseDemandReported",
        "material_id": "MASK-FFP2",
        "unit": "pcs",
        "quantity": 500,
    },
    "OrderAcknowledged": {
        "type": "OrderAcknowledged",
        "order_id": "order-00000001",
        "accepted": True,
    },
}


def event(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": "evt-00000001",
        "partner_id": "klinik-a",
        "occurred_at": "2030-01-01T00:00:00Z",
        **copy.deepcopy(EVENTS[kind]),
        **extra,
    }


def rejected_fields(raw: dict[str, Any]) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as info:
        parse_partner_event(json.dumps(raw))
    return [tuple(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_the_valid_events_are_accepted() -> None:
    for kind in EVENTS:
        assert parse_partner_event(json.dumps(event(kind))).type == kind


@pytest.mark.parametrize("field", FORBIDDEN)
@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_forbidden_field_at_top_level_is_rejected_and_named(kind: str, field: str) -> None:
    locations = rejected_fields(event(kind, **{field: 12.5}))
    assert locations == [(kind, field)], locations  # the only error, and it names the field


@pytest.mark.parametrize("field", FORBIDDEN)
def test_forbidden_field_inside_a_position_is_rejected_and_named(field: str) -> None:
    raw = event("StockReported")
    raw["positions"][0][field] = "ACME GmbH" if "customer" in field else 3.99
    locations = rejected_fields(raw)
    assert locations == [("StockReported", "positions", "0", field)], locations


def _field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of a model and of the models nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        stack = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= _field_names(annotation, seen)
            elif get_origin(annotation) is not None or get_args(annotation):
                stack.extend(get_args(annotation))
    return names


def test_every_partner_event_type_is_checked() -> None:
    assert set(EVENTS) == {t.model_fields["type"].default for t in PARTNER_EVENT_TYPES}


def test_no_partner_event_declares_a_competition_sensitive_field() -> None:
    """A future field like ``price`` would be accepted by the contract: forbid it by name."""
    for model in PARTNER_EVENT_TYPES:
        names = _field_names(model)
        sensitive = {n for n in names for f in FORBIDDEN if f in n or n in ("cost", "prices")}
        assert not sensitive, f"{model.__name__} declares {sorted(sensitive)}"


def test_prices_exist_only_in_purchasing_pools() -> None:
    """Among scenario contracts only the purchasing pool carries prices (coordinator only)."""
    priced = {
        name for name in _field_names(Scenario) if "price" in name or name in ("cost", "unit_cost")
    }
    assert priced, "the purchasing pool has prices"
    pool_names = _field_names(Purchasing)
    assert priced <= pool_names, priced - pool_names


def test_protocol_requires_a_purpose() -> None:
    data = protocol().model_dump(mode="json")
    data.pop("purpose")
    with pytest.raises(ValidationError) as info:
        Protocol.model_validate(data, strict=False)
    assert any(e["loc"] == ("purpose",) for e in info.value.errors())
    data["purpose"] = "x"
    with pytest.raises(ValidationError):
        Protocol.model_validate(data, strict=False)


def test_run_updates_record_purpose_data_used_and_recipients() -> None:
    from protocols.run import solve

    p = protocol().model_copy(update={"id": "audit-test"})
    core = Coordinator({p.id: p})
    run, started, messages = core.trigger(p.id, "manual", 1_900_000_000.0)
    assert started
    first = RunUpdated.model_validate_json(messages[-1].value)
    assert first.purpose == p.purpose and first.recipients == [] and first.snapshot_hash == ""
    if run.state.value == "awaiting_approval":
        core.approve(run.run_id, "coord-a", "tok-a", 1_900_000_001.0)
    sc = scenario(
        [("donor", 150, 50, 0.5, 10.0), ("idle", 500, 50, 1.0, 30.0)],
        [("hosp", 1, 80, 10.5)],
    )
    result = solve(p, sc, run_id=run.run_id)
    published = core.solved(run.run_id, result, 0.1, 1_900_000_002.0)
    updates = [
        RunUpdated.model_validate_json(m.value) for m in published if b'"RunUpdated"' in m.value
    ]
    last = updates[-1]
    assert last.purpose == p.purpose
    assert last.snapshot_hash == result.record.snapshot_hash != ""
    receivers = sorted({q for o in result.decision.orders() for q in o.partners()})
    assert "hosp" in receivers and last.recipients == receivers
    assert set(last.data_partners) >= set(receivers)
