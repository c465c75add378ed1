"""The checked-in JSON Schema / AsyncAPI files match the models, and the checker can tell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from schemas import generate
from schemas.events import PARTNER_EVENT_TYPES
from schemas.generate import SCHEMA_DIR, SchemaEntry, check_all, rendered, write_all
from services.common.topics import ALL_TOPICS, PARTNER_TOPIC_TEMPLATES

VALID_STOCK: dict[str, Any] = {
    "type": "StockReported",
    "schema_version": 1,
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


def test_checked_in_files_match_models() -> None:
    drifted = check_all(SCHEMA_DIR)
    assert drifted == [], (
        f"generated files drifted from the models: {drifted}; run `python -m schemas.generate`"
    )


def test_check_reports_changed_missing_and_stale_files(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert check_all(tmp_path) == []
    assert {p.relative_to(tmp_path).as_posix() for p in written} == set(rendered())

    changed = tmp_path / "json" / "StockReported.schema.json"
    changed.write_text(changed.read_text().replace('"positions"', '"stock"', 1))
    (tmp_path / "asyncapi.yaml").unlink()
    (tmp_path / "json" / "Removed.schema.json").write_text("{}\n")
    assert check_all(tmp_path) == [
        "asyncapi.yaml",
        "json/Removed.schema.json",
        "json/StockReported.schema.json",
    ]

    write_all(tmp_path)
    assert check_all(tmp_path) == []
    assert not (tmp_path / "json" / "Removed.schema.json").exists()


def test_output_is_deterministic_and_newline_terminated() -> None:
    first, second = rendered(), rendered()
    assert first == second
    for relative, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), relative
    for relative, text in first.items():
        if relative.endswith(".json"):
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_module_entry_point_check_mode(tmp_path: Path) -> None:
    lines: list[str] = []
    assert generate.main(["--check", "--dir", str(tmp_path)], out=lines.append) == 1
    assert any("drifted:" in line for line in lines)
    assert generate.main(["--dir", str(tmp_path)], out=lines.append) == 0
    assert generate.main(["--check", "--dir", str(tmp_path)], out=lines.append) == 0


def test_adding_a_model_is_one_registry_entry() -> None:
    from schemas.common import Contract

    class Extra(Contract):
        name: str

    registry = [*generate.REGISTRY, SchemaEntry("Extra", Extra, "test only")]
    files = rendered(registry)
    assert "json/Extra.schema.json" in files
    assert json.loads(files["json/Extra.schema.json"])["required"] == ["name"]
    with pytest.raises(ValueError, match="twice"):
        rendered([*registry, SchemaEntry("Extra", Extra, "again")])
    with pytest.raises(ValueError, match="unknown topic"):
        rendered([SchemaEntry("Extra", Extra, "x", topic="no.such.topic")])


def test_asyncapi_describes_every_topic_and_references_existing_schemas() -> None:
    doc = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    by_address = {c["address"]: c for c in doc["channels"].values()}
    assert set(by_address) == {t.name for t in (*ALL_TOPICS, *PARTNER_TOPIC_TEMPLATES)}
    for topic in (*ALL_TOPICS, *PARTNER_TOPIC_TEMPLATES):
        channel = by_address[topic.name]
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        assert channel["description"].startswith(topic.description)
    partner_channel = by_address["verbund.partner.events"]
    assert set(partner_channel["messages"]) == {
        t.model_fields["type"].default for t in PARTNER_EVENT_TYPES
    }
    for name, message in doc["components"]["messages"].items():
        ref = message["payload"]["$ref"]
        assert (SCHEMA_DIR / ref).is_file(), ref
        assert json.loads((SCHEMA_DIR / ref).read_text())["title"] == name
    key = doc["components"]["messages"]["StockReported"]["bindings"]["kafka"]["key"]
    assert key["pattern"].startswith("^[a-z]")
    for operation in doc["operations"].values():
        channel_id = operation["channel"]["$ref"].rsplit("/", 1)[1]
        assert channel_id in doc["channels"]


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / "json" / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_generated_schema_is_valid_json_schema() -> None:
    for path in sorted((SCHEMA_DIR / "json").glob("*.schema.json")):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("schema_name", ["StockReported", "PartnerEvent"])
def test_json_schema_agrees_with_models(schema_name: str) -> None:
    from schemas.events import parse_partner_event

    validator = _validator(schema_name)
    assert not list(validator.iter_errors(VALID_STOCK))
    parse_partner_event(json.dumps(VALID_STOCK))

    bad_cases: list[dict[str, Any]] = [
        {**VALID_STOCK, "price": 3.5},
        {k: v for k, v in VALID_STOCK.items() if k != "type"},
        {k: v for k, v in VALID_STOCK.items() if k != "event_id"},
        {**VALID_STOCK, "positions": []},
        {**VALID_STOCK, "partner_id": "Klinikum Nord"},
        {**VALID_STOCK, "schema_version": 2},
        {**VALID_STOCK, "positions": [{**VALID_STOCK["positions"][0], "on_hand": -1}]},
        {**VALID_STOCK, "positions": [{**VALID_STOCK["positions"][0], "unit": "bottles"}]},
        {**VALID_STOCK, "positions": [{**VALID_STOCK["positions"][0], "customer": "x"}]},
    ]
    for case in bad_cases:
        assert list(validator.iter_errors(case)), case
        with pytest.raises(ValueError):
            parse_partner_event(json.dumps(case))


def test_alliance_schema_accepts_a_directory() -> None:
    validator = _validator("Alliance")
    alliance = {
        "name": "Test",
        "partners": [
            {
                "id": "klinikum-nord",
                "name": "Klinikum Nord",
                "sector": "hospital",
                "region": "DE-BY",
                "criticality": "hospital",
                "sites": [{"id": "lager-1", "name": "L1", "latitude": 48.1, "longitude": 11.5}],
            }
        ],
    }
    assert not list(validator.iter_errors(alliance))
    alliance["partners"][0]["criticality"] = "vip"
    assert list(validator.iter_errors(alliance))


def test_asyncapi_partners_send_and_receive_only_on_their_own_topics() -> None:
    doc = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    by_address = {c["address"]: (cid, c) for cid, c in doc["channels"].items()}
    partner_events = {t.model_fields["type"].default for t in PARTNER_EVENT_TYPES}
    own_events_id, own_events = by_address["verbund.partner.{partner_id}.events"]
    own_orders_id, own_orders = by_address["verbund.partner.{partner_id}.orders"]
    assert set(own_events["messages"]) == partner_events
    assert set(own_orders["messages"]) == {"OrderIssued", "OrderUpdated"}
    for channel in (own_events, own_orders):
        assert set(channel["parameters"]) == {"partner_id"}
    sends = [op for op in doc["operations"].values() if op["action"] == "send"]
    assert [op["channel"]["$ref"] for op in sends] == [f"#/channels/{own_events_id}"]
    receives = {op["channel"]["$ref"] for op in doc["operations"].values()}
    assert f"#/channels/{own_orders_id}" in receives
