"""Contract-level checks (pure): what the models accept and the precise errors they give."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import errors
from schemas.errors import field_error_details, field_errors
from schemas.events import (
    PARTNER_EVENT_TYPES,
    CapacityNeeded,
    NeedReported,
    PurchaseDemandReported,
    StockReported,
    parse_partner_event,
)
from services.gateway.core import Rejection, authenticate, check_content_type, parse_submission
from services.gateway.tokens import (
    TokenFileError,
    TokenStore,
    hash_token,
    issue_token,
    read_token_file,
    revoke_tokens,
)


def _stock(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "StockReported",
        "event_id": "evt-00000001",
        "partner_id": "klinikum-nord",
        "occurred_at": "2026-11-22T08:00:00+01:00",
        "positions": [
            {
                "site_id": "lager-1",
                "material_id": "NACL-500ML",
                "unit": "pcs",
                "on_hand": 120,
                "safety_stock": 40,
                "daily_consumption": 12.5,
            }
        ],
    }
    event.update(overrides)
    return event


def _fields(raw: str | bytes) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_partner_event(raw)
    return [d["field"] for d in field_error_details(info.value)]


def test_valid_event_parses_with_defaults() -> None:
    event = parse_partner_event(json.dumps(_stock()))
    assert isinstance(event, StockReported)
    assert event.schema_version == 1
    assert event.occurred_at.utcoffset() is not None
    # the canonical re-serialisation parses to the same event
    assert parse_partner_event(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (json.dumps(_stock(price=1.0)), "price"),
        (json.dumps({k: v for k, v in _stock().items() if k != "type"}), "type"),
        (json.dumps(_stock(type="Unknown")), "type"),
        (json.dumps(_stock(occurred_at="2026-11-22T08:00:00")), "occurred_at"),
        (json.dumps(_stock(positions=[])), "positions"),
        (json.dumps(_stock(partner_id="X")), "partner_id"),
        (json.dumps(_stock(schema_version=2)), "schema_version"),
        (json.dumps(_stock()).replace("120", "NaN"), "positions.0.on_hand"),
        (json.dumps(_stock()).replace("12.5", "-Infinity"), "positions.0.daily_consumption"),
    ],
)
def test_errors_name_the_field(raw: str, field: str) -> None:
    assert field in _fields(raw)


def test_nan_is_reported_as_not_finite() -> None:
    with pytest.raises(ValidationError) as info:
        parse_partner_event(json.dumps(_stock()).replace("120", "NaN"))
    assert field_errors(info.value) == ["positions.0.on_hand: Input should be a finite number"]


def test_batch_errors_are_prefixed_with_the_event_index() -> None:
    second = _stock(event_id="evt-00000002")
    second["positions"][0]["unit"] = "bottles"
    with pytest.raises(Rejection) as info:
        parse_submission(json.dumps([_stock(), second]).encode(), max_events=10)
    assert info.value.status == 422
    assert info.value.fields == ["1.positions.0.unit"]


def test_single_and_batch_submissions() -> None:
    single = parse_submission(json.dumps(_stock()).encode(), max_events=10)
    assert not single.batch and len(single.events) == 1
    batch = parse_submission(
        b"  \n" + json.dumps([_stock(), _stock(event_id="evt-00000002")]).encode(), max_events=10
    )
    assert batch.batch and [e.event_id for e in batch.events] == ["evt-00000001", "evt-00000002"]
    with pytest.raises(Rejection) as info:
        parse_submission(json.dumps([_stock()] * 3).encode(), max_events=2)
    assert info.value.status == 413


def test_need_withdrawal_is_zero_not_negative() -> None:
    need = {
        "type": "NeedReported",
        "event_id": "evt-00000009",
        "partner_id": "klinikum-nord",
        "occurred_at": "2026-11-22T08:00:00Z",
        "need_id": "n1",
        "site_id": "lager-1",
        "material_id": "NACL-500ML",
        "unit": "pcs",
        "quantity": 0,
        "needed_by": "2026-11-25",
        "criticality": "hospital",
    }
    assert isinstance(parse_partner_event(json.dumps(need)), NeedReported)
    assert _fields(json.dumps({**need, "quantity": -1})) == ["quantity"]


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON;charset=UTF-8", True),
        ("application/json; charset=latin-1", False),
        ("text/json", False),
        ("", False),
        (None, False),
    ],
)
def test_content_type(content_type: str | None, ok: bool) -> None:
    if ok:
        check_content_type(content_type)
    else:
        with pytest.raises(Rejection) as info:
            check_content_type(content_type)
        assert info.value.status == 415


class _Tokens:
    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def partner_for(self, token: str) -> str | None:
        return self.mapping.get(token)


def test_authenticate() -> None:
    tokens = _Tokens({"secret-token": "klinikum-nord"})
    assert authenticate("Bearer secret-token", tokens) == "klinikum-nord"
    assert authenticate("bearer  secret-token ", tokens) == "klinikum-nord"
    for header in (None, "", "Bearer", "Basic secret-token", "Bearer other"):
        with pytest.raises(Rejection) as info:
            authenticate(header, tokens)
        assert info.value.status == 401
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_tokens_are_stored_hashed_and_resolve(tmp_path: Any) -> None:
    path = tmp_path / "tokens.yaml"
    first = issue_token("klinikum-nord", path)
    second = issue_token("klinikum-nord", path)
    other = issue_token("stadtwerke-sued", path)
    text = path.read_text()
    assert first not in text and second not in text and other not in text
    assert hash_token(first) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_token_file(path)["klinikum-nord"] == [hash_token(first), hash_token(second)]
    store = TokenStore.load(path)
    assert store.partner_for(first) == "klinikum-nord"
    assert store.partner_for(second) == "klinikum-nord"
    assert store.partner_for(other) == "stadtwerke-sued"
    assert store.partner_for(first + "x") is None
    assert revoke_tokens("klinikum-nord", path) == 2
    assert TokenStore.load(path).partner_for(first) is None
    with pytest.raises(ValueError, match="partner id"):
        issue_token("Not A Partner", path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- a\n- b\n", "mapping"),
        ("Klinikum: []\n", "not a valid partner id"),
        ("klinikum-nord: sha256:abc\n", "list"),
        ("klinikum-nord: [plain-token]\n", "sha256"),
        (
            f"klinikum-nord: ['{hash_token('t')}']\nstadtwerke-sued: ['{hash_token('t')}']\n",
            "also belongs",
        ),
        ("klinikum-nord: [\n", "cannot read"),
    ],
)
def test_bad_token_files_fail_with_one_line(tmp_path: Any, content: str, problem: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(TokenFileError, match=problem) as info:
        TokenStore.load(path)
    assert "\n" not in str(info.value)


def _capacity_need(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "CapacityNeeded",
        "event_id": "evt-00000011",
        "partner_id": "klinikum-nord",
        "occurred_at": "2026-11-22T08:00:00Z",
        "need_id": "steri-1",
        "site_id": "lager-1",
        "capability": "sterilisation",
        "required_qualifications": ["iso-13485"],
        "hours": 16,
        "needed_by": "2026-11-25",
        "criticality": "hospital",
    }
    event.update(overrides)
    return event


def _demand(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "PurchaseDemandReported",
        "event_id": "evt-00000012",
        "partner_id": "klinikum-nord",
        "occurred_at": "2026-11-22T08:00:00Z",
        "material_id": "MASK-FFP2",
        "unit": "pcs",
        "quantity": 5000,
    }
    event.update(overrides)
    return event


def test_capacity_need_and_purchase_demand_parse() -> None:
    need = parse_partner_event(json.dumps(_capacity_need()))
    assert isinstance(need, CapacityNeeded) and need.hours == 16
    demand = parse_partner_event(json.dumps(_demand()))
    assert isinstance(demand, PurchaseDemandReported) and demand.quantity == 5000
    assert parse_partner_event(json.dumps(_demand(quantity=0))).quantity == 0  # withdrawal


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (json.dumps(_capacity_need(hours=-1)), "hours"),
        (json.dumps(_capacity_need(capability="CNC Milling")), "capability"),
        (json.dumps(_capacity_need(required_qualifications=["ok", "Not OK"])),
         "required_qualifications.1"),
        (json.dumps(_capacity_need(criticality="urgent")), "criticality"),
        (json.dumps(_capacity_need(needed_by="soon")), "needed_by"),
        (json.dumps(_demand(quantity="lots")), "quantity"),
        (json.dumps(_demand(unit_price=2.5)), "unit_price"),  # partners never send prices
        (json.dumps(_demand(material_id="mask ffp2")), "material_id"),
    ],
)
def test_new_partner_events_name_the_bad_field(raw: str, field: str) -> None:
    assert _fields(raw) == [field]


def test_error_locations_know_every_partner_event_type() -> None:
    """Field paths drop the union tag of every partner event type (no 'CapacityNeeded.hours')."""
    assert set(errors._UNION_TAGS) == {t.model_fields["type"].default for t in PARTNER_EVENT_TYPES}
