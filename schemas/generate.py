"""Generate the JSON Schema files and the AsyncAPI document from the pydantic contracts.

Everything partners need who don't write Python is derived from the models here:

* ``json/<Name>.schema.json`` - one JSON Schema (draft 2020-12) per registered contract;
* ``asyncapi.yaml`` - an AsyncAPI 3.0 document: every topic of
  :mod:`services.common.topics` (name, key, partitions, description) and the
  messages on it, whose payloads reference the JSON Schema files.

Adding a contract is one line in :data:`REGISTRY`. Output is deterministic
(sorted keys, trailing newline), so ``check_all`` can compare byte for byte.

Usage: ``python -m schemas.generate [--check] [--dir DIR]`` (exit 1 on drift).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter

from schemas import SCHEMA_VERSION
from schemas.alerts import DeadLetter, MaterialBalancesReported, ShortageDetected, ShortageResolved
from schemas.alliance import Alliance
from schemas.audit import AccessRefused
from schemas.common import MATERIAL_ID_PATTERN, PARTNER_ID_PATTERN
from schemas.coordination import OrderIssued, OrderUpdated
from schemas.events import (
    CapacityNeeded,
    CapacityOffered,
    NeedReported,
    OrderAcknowledged,
    PartnerEvent,
    PurchaseDemandReported,
    StockReported,
)
from schemas.protocol import Protocol
from schemas.purchasing import SupplierQuoteSet
from schemas.scenario import Scenario
from services.common.topics import (
    ALERTS,
    ALL_TOPICS,
    COMMANDS,
    DEAD_LETTERS,
    PARTNER_EVENTS,
    PARTNER_ORDERS,
    PARTNER_OWN_EVENTS,
    PARTNER_OWN_ORDERS,
    PARTNER_TOPIC_TEMPLATES,
    QUOTES,
    TopicSpec,
)

SCHEMA_DIR = Path(__file__).resolve().parent
JSON_DIR_NAME = "json"
ASYNCAPI_NAME = "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"


@dataclass(frozen=True)
class SchemaEntry:
    """One generated JSON Schema file.

    ``target`` is a pydantic model or any type a ``TypeAdapter`` accepts (e.g. a
    discriminated union). ``topic`` names the Kafka topic the contract travels on,
    which makes it a message in the AsyncAPI document; files (alliance directory,
    scenarios) have none.
    """

    name: str
    target: Any
    summary: str
    topic: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.schema.json"


# The registry: one line per contract. Order only matters for readability; output is sorted.
REGISTRY: list[SchemaEntry] = [
    SchemaEntry("StockReported", StockReported, "A partner's stock export (many positions).",
                PARTNER_EVENTS.name),
    SchemaEntry("CapacityOffered", CapacityOffered, "Idle capacity a partner offers.",
                PARTNER_EVENTS.name),
    SchemaEntry("NeedReported", NeedReported, "An explicit need of a partner.",
                PARTNER_EVENTS.name),
    SchemaEntry("CapacityNeeded", CapacityNeeded,
                "Production hours of a capability a partner needs from others.",
                PARTNER_EVENTS.name),
    SchemaEntry("PurchaseDemandReported", PurchaseDemandReported,
                "Quantity a partner wants to buy through its purchasing pool (no prices).",
                PARTNER_EVENTS.name),
    SchemaEntry("OrderAcknowledged", OrderAcknowledged, "A partner's answer to an order.",
                PARTNER_EVENTS.name),
    SchemaEntry("PartnerEvent", PartnerEvent, "Any partner event, discriminated by `type`."),
    SchemaEntry("ShortageDetected", ShortageDetected, "A shortage started or worsened.",
                ALERTS.name),
    SchemaEntry("ShortageResolved", ShortageResolved, "An open shortage ended.", ALERTS.name),
    SchemaEntry("MaterialBalancesReported", MaterialBalancesReported,
                "Need vs. surplus of one material over one partition.", ALERTS.name),
    SchemaEntry("DeadLetter", DeadLetter, "A message that could not be processed.",
                DEAD_LETTERS.name),
    SchemaEntry("AccessRefused", AccessRefused, "Access control refused a request (audited).",
                COMMANDS.name),
    SchemaEntry("OrderIssued", OrderIssued, "An order to the partner it involves.",
                PARTNER_ORDERS.name),
    SchemaEntry("OrderUpdated", OrderUpdated, "An order accepted, declined, expired, cancelled.",
                PARTNER_ORDERS.name),
    SchemaEntry("SupplierQuoteSet", SupplierQuoteSet,
                "A supplier's price tiers for a pool material, entered by a coordinator.",
                QUOTES.name),
    SchemaEntry("Alliance", Alliance, "The alliance directory file (YAML or JSON)."),
    SchemaEntry("Protocol", Protocol, "A crisis protocol file (versioned, reviewed playbook)."),
    SchemaEntry("Scenario", Scenario, "A drill scenario file: alliance state to run protocols on."),
]

# Each partner's own topics (``{partner_id}`` in the address) carry the messages of the shared
# internal topic the partner bridge connects them with.
PARTNER_TOPIC_CARRIES: dict[str, str] = {
    PARTNER_OWN_EVENTS.name: PARTNER_EVENTS.name,
    PARTNER_OWN_ORDERS.name: PARTNER_ORDERS.name,
}
PARTNER_CHANNEL_IDS: dict[str, str] = {
    PARTNER_OWN_EVENTS.name: "partnerOwnEvents",
    PARTNER_OWN_ORDERS.name: "partnerOwnOrders",
}

# Kafka record keys, by the ``key`` text of a TopicSpec; anything else is a plain string.
KEY_SCHEMAS: dict[str, dict[str, Any]] = {
    "partner id": {"type": "string", "pattern": PARTNER_ID_PATTERN},
    "material id": {"type": "string", "pattern": MATERIAL_ID_PATTERN},
}


def register(entry: SchemaEntry) -> None:
    """Add a contract from another module (e.g. ``schemas.scenario``) to the registry."""
    if any(existing.name == entry.name for existing in REGISTRY):
        raise ValueError(f"schema {entry.name!r} is already registered")
    REGISTRY.append(entry)


def json_schema(entry: SchemaEntry) -> dict[str, Any]:
    """The JSON Schema of one registry entry, as partners validate the wire format."""
    if isinstance(entry.target, type) and issubclass(entry.target, BaseModel):
        schema = entry.target.model_json_schema(mode="validation")
    else:
        schema = TypeAdapter(entry.target).json_schema(mode="validation")
    _require_type_tags(schema)
    _require_type_tags_in_defs(schema)
    document: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "$id": entry.filename}
    document.update(schema)
    document.setdefault("title", entry.name)
    document.setdefault("description", entry.summary)
    return document


def _require_type_tags(schema: dict[str, Any]) -> None:
    """``type`` has a default in the models but is required on the wire (it selects the model)."""
    properties = schema.get("properties", {})
    tag = properties.get("type")
    if isinstance(tag, dict) and "const" in tag:
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")


def _require_type_tags_in_defs(schema: dict[str, Any]) -> None:
    for definition in schema.get("$defs", {}).values():
        if isinstance(definition, dict):
            _require_type_tags(definition)


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _channel_id(topic: TopicSpec) -> str:
    if topic.name in PARTNER_CHANNEL_IDS:
        return PARTNER_CHANNEL_IDS[topic.name]
    head, *rest = topic.name.removeprefix("verbund.").replace("-", ".").split(".")
    return head + "".join(part.capitalize() for part in rest)


def asyncapi_document(
    registry: Sequence[SchemaEntry] = REGISTRY,
    topics: Sequence[TopicSpec] = ALL_TOPICS,
    partner_topics: Sequence[TopicSpec] = PARTNER_TOPIC_TEMPLATES,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 description of Verbund's topics and their messages.

    Partners send to their own ``verbund.partner.{partner_id}.events`` and receive from their
    own ``verbund.partner.{partner_id}.orders``; every other topic is Verbund's (partners
    may not touch the shared keyed ones: Kafka ACLs cannot restrict keys)."""
    known_topics = {t.name for t in topics}
    for entry in registry:
        if entry.topic is not None and entry.topic not in known_topics:
            raise ValueError(f"schema {entry.name!r} names unknown topic {entry.topic!r}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in [*topics, *partner_topics]:
        channel_id = _channel_id(topic)
        carried = PARTNER_TOPIC_CARRIES.get(topic.name, topic.name)
        entries = [e for e in registry if e.topic == carried]
        key_schema = dict(KEY_SCHEMAS.get(topic.key, {"type": "string"}))
        key_schema["description"] = f"Record key: {topic.key}."
        channel_messages: dict[str, Any] = {}
        for entry in entries:
            messages[entry.name] = {
                "name": entry.name,
                "title": entry.name,
                "summary": entry.summary,
                "contentType": "application/json",
                "payload": {"$ref": f"./{JSON_DIR_NAME}/{entry.filename}"},
                "bindings": {
                    "kafka": {"key": key_schema, "bindingVersion": KAFKA_BINDING_VERSION}
                },
            }
            channel_messages[entry.name] = {"$ref": f"#/components/messages/{entry.name}"}
        channel: dict[str, Any] = {
            "address": topic.name,
            "title": topic.name,
            "description": topic.description
            + ("" if entries else " Internal to Verbund; the record format is not a contract."),
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
            "messages": channel_messages,
        }
        if topic in partner_topics:
            channel["parameters"] = {
                "partner_id": {
                    "description": "The partner's id (the alliance directory's partner id).",
                    "examples": ["klinikum-nord"],
                }
            }
        channels[channel_id] = channel
        if entries:
            # Partners send partner events to their own topic; all else is published by Verbund.
            action = "send" if topic.name == PARTNER_OWN_EVENTS.name else "receive"
            operations[f"{action}{channel_id[0].upper()}{channel_id[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": (
                    f"Each partner produces to its own {topic.name} (only it may write "
                    f"there); the partner bridge forwards its events to {carried}."
                    if action == "send"
                    else f"Each partner consumes its own {topic.name} (only it may read "
                    f"there), copied by the partner bridge from {carried}."
                    if topic in partner_topics
                    else f"Subscribers consume {topic.name}, keyed by {topic.key}."
                ),
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{e.name}"} for e in entries
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:verbund:alliance-backbone",
        "info": {
            "title": "Verbund alliance backbone",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Kafka topics of Verbund, described from a partner's point of view: "
                "each partner sends partner events to its own topic "
                "verbund.partner.{partner_id}.events (or POSTs them to the HTTP gateway, "
                "`/v1/events`) and receives its orders on verbund.partner.{partner_id}.orders; "
                "the shared topics are Verbund's own. Generated by `python -m schemas.generate` "
                "from the pydantic contracts in `schemas/`; do not edit by hand."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "alliance": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "The alliance's Kafka cluster (set by the operator).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: every repeated mapping is written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml_text(document: dict[str, Any]) -> str:
    text: str = yaml.dump(
        document,
        Dumper=_PlainDumper,
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return text if text.endswith("\n") else text + "\n"


def rendered(registry: Sequence[SchemaEntry] = REGISTRY) -> dict[str, str]:
    """Every generated file as ``relative path -> text``."""
    names = [e.name for e in registry]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"schema names registered twice: {', '.join(duplicates)}")
    files = {f"{JSON_DIR_NAME}/{e.filename}": _json_text(json_schema(e)) for e in registry}
    files[ASYNCAPI_NAME] = _yaml_text(asyncapi_document(registry))
    return dict(sorted(files.items()))


def _stale(target_dir: Path, expected: dict[str, str]) -> list[str]:
    json_dir = target_dir / JSON_DIR_NAME
    if not json_dir.is_dir():
        return []
    return sorted(
        f"{JSON_DIR_NAME}/{path.name}"
        for path in json_dir.glob("*.schema.json")
        if f"{JSON_DIR_NAME}/{path.name}" not in expected
    )


def write_all(target_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write every generated file under ``target_dir``; returns the paths written.

    Files are only rewritten when their content changed; ``*.schema.json`` files
    that no registered contract produces any more are removed.
    """
    expected = rendered()
    written: list[Path] = []
    for relative, text in expected.items():
        path = target_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    for relative in _stale(target_dir, expected):
        (target_dir / relative).unlink()
    return written


def check_all(target_dir: Path = SCHEMA_DIR) -> list[str]:
    """Relative paths of generated files that are missing, differ, or are stale."""
    expected = rendered()
    drifted = []
    for relative, text in expected.items():
        path = target_dir / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            drifted.append(relative)
    drifted.extend(_stale(target_dir, expected))
    return sorted(drifted)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schemas.generate",
        description="Generate JSON Schema and AsyncAPI documents from the contracts.",
    )
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 on drift")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="target (default: schemas/)")
    args = parser.parse_args(argv)
    emit = out or (lambda line: sys.stdout.write(line + "\n"))
    if args.check:
        drifted = check_all(args.dir)
        for relative in drifted:
            emit(f"drifted: {args.dir / relative}")
        if drifted:
            emit("run `python -m schemas.generate` (or `verbund schemas generate`) and commit")
            return 1
        emit(f"{len(rendered())} generated files up to date in {args.dir}")
        return 0
    paths = write_all(args.dir)
    emit(f"wrote {len(paths)} files to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
