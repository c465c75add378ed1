"""``--set key=value`` overrides of protocol parameters for drills and what-ifs."""

from __future__ import annotations

from typing import Any

import yaml

from protocols.loader import ProtocolFileError, parse_protocol
from schemas.protocol import Protocol


def parse_assignment(text: str, option: str = "--set") -> tuple[list[str], Any]:
    """``optimization.fairness=true`` -> (["optimization", "fairness"], True).

    A key without a dot addresses the optimization parameters; ``solver.*`` the
    solver settings. Values are parsed as YAML scalars (numbers, booleans, lists).
    ``option``: the command-line option the assignment came from (named in errors).
    """
    if "=" not in text:
        raise ValueError(f"{option} {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ValueError(f"{option} {text!r}: empty key")
    if len(parts) == 1:
        parts = ["optimization", *parts]
    return parts, yaml.safe_load(raw)


def apply_overrides(protocol: Protocol, assignments: list[str], option: str = "--set") -> Protocol:
    """A new, validated protocol with the assignments applied (errors name ``option``)."""
    data: dict[str, Any] = protocol.model_dump(mode="json")
    for text in assignments:
        path, value = parse_assignment(text, option)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{option} {text!r}: {part} is not a section")
        node[path[-1]] = value
    try:
        from pathlib import Path

        return parse_protocol(data, Path(f"<{protocol.id} with {option}>"))
    except ProtocolFileError as exc:
        raise ValueError(str(exc)) from exc
