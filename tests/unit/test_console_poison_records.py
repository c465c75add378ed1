"""One malformed record on a topic the console follows is skipped (the service counts it
as a bad record) instead of being stored and breaking every view and the stream."""

from __future__ import annotations

from typing import Any

import pytest

from services.console.service import ConsoleService
from services.console.views import OpsState

RUN = "run-000000000001"
GOOD_ALERT = {
    "type": "ShortageDetected",
    "partner_id": "werk-a",
    "site_id": "s1",
    "material_id": "m1",
    "unit": "kg",
    "severity": "critical",
    "causes": ["stock_out"],
}
GOOD_RUN = {"type": "RunUpdated", "run_id": RUN, "protocol_id": "p", "state": "solving"}
GOOD_DECISION = {
    "type": "DecisionPublished",
    "run_id": RUN,
    "revision": 1,
    "protocol_id": "p",
    "unmet_by_tier": {},
    "requested_by_tier": {},
}
GOOD_ORDER = {
    "type": "OrderIssued",
    "order_id": "tr-000000000001",
    "run_id": RUN,
    "revision": 1,
    "kind": "transfer",
    "recipient": "werk-a",
    "order": {"from_partner": "werk-b", "to_partner": "werk-a", "quantity": 1.0},
}


def _without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != name}


BAD: list[tuple[str, dict[str, Any]]] = [
    ("alert", _without(GOOD_ALERT, "unit")),
    ("alert", _without(GOOD_ALERT, "severity")),
    ("alert", GOOD_ALERT | {"causes": 3}),
    ("run", _without(GOOD_RUN, "protocol_id")),
    ("run", GOOD_RUN | {"approvals": 1}),
    ("run", GOOD_RUN | {"revision": "x"}),
    ("decision", GOOD_DECISION | {"revision": "x"}),
    ("decision", GOOD_DECISION | {"unmet_by_tier": 5}),
    ("order", GOOD_ORDER | {"order": "not an object"}),
    ("order", GOOD_ORDER | {"revision": "x"}),
    (
        "order",
        {
            "type": "OrderUpdated",
            "order_id": "tr-000000000002",
            "run_id": RUN,
            "revision": "x",
            "state": "accepted",
            "at": "2026-01-01T00:00:00+00:00",
            "reason": "",
        },
    ),
    (
        "order",
        {
            "type": "OrderUpdated",
            "order_id": "tr-000000000001",
            "run_id": RUN,
            "revision": 1,
            "state": {"not": "a state"},
            "at": "2026-01-01T00:00:00+00:00",
            "reason": "",
        },
    ),
]


def _apply(ops: OpsState, which: str, record: dict[str, Any]) -> None:
    {
        "alert": ops.apply_alert,
        "run": ops.apply_run,
        "decision": ops.apply_decision,
        "order": ops.apply_order,
    }[which](record)


@pytest.mark.parametrize(("which", "record"), BAD)
def test_a_malformed_record_is_rejected_and_the_views_still_build(
    which: str, record: dict[str, Any]
) -> None:
    service = ConsoleService("unused:9092", None, 60.0, clock=lambda: 0.0)
    for good in (("alert", GOOD_ALERT), ("run", GOOD_RUN), ("decision", GOOD_DECISION)):
        _apply(service.ops, *good)
    _apply(service.ops, "order", GOOD_ORDER)
    with pytest.raises((KeyError, TypeError, ValueError)):
        _apply(service.ops, which, record)
    for role, principal in (
        ("coordinator", ""),
        ("operator", ""),
        ("auditor", ""),
        ("partner", "werk-a"),
    ):
        service.views_for(role, principal)


def test_well_formed_records_still_apply() -> None:
    ops = OpsState()
    assert ops.apply_alert(GOOD_ALERT)
    assert ops.apply_run(GOOD_RUN)
    assert ops.apply_decision(GOOD_DECISION)
    assert ops.apply_order(GOOD_ORDER)
