"""Reading a configuration or data file (YAML or JSON) into plain data, with one plain-words
reason when that fails. Each loader adds its file kind and raises its own error type."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


class UnreadableFile(ValueError):
    """Why a file's text could not be turned into data (the message names no file)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the
    last one silently: a second ``approval: automatic`` further down a reviewed protocol
    would win) and names the line of an impossible date."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # ``<<:`` merges may override (that is what they are for)
        key = loader.construct_object(key_node, deep=deep)
        try:
            line = first_line.setdefault(key, key_node.start_mark.line)
        except TypeError:
            continue  # an unhashable key: construct_mapping names it
        if line != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the key {key!r} is given twice (also on line {line + 1})",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


def _timestamp(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
        ) from exc


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_yaml(text: str) -> Any:
    """YAML like ``yaml.safe_load``, refusing repeated keys and impossible dates."""
    return yaml.load(text, Loader=_StrictLoader)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} is given twice in one object{_near(pairs)}")
            seen.add(key)
    return result


def _near(pairs: list[tuple[str, Any]]) -> str:
    """Where an object is, by its first field if that is a short plain value."""
    first, value = pairs[0]
    if isinstance(value, str | int | float) and len(repr(value)) <= 60:
        return f" (the object that starts {first!r}: {value!r})"
    return ""


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def load_json(text: str) -> Any:
    """JSON like ``orjson.loads``, refusing a key given twice in one object (a JSON parser
    keeps the last one silently: a second ``"positions"`` further down a scenario file
    would replace the first), the non-standard NaN and Infinity, and numbers too large
    for a float."""
    return json.loads(
        text, object_pairs_hook=_object, parse_constant=_not_a_number, parse_float=_finite
    )


def read_data(path: Path, parse: Callable[[str], Any] = load_yaml) -> Any:
    """``parse`` (YAML by default) of the file's UTF-8 text."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # before ValueError: it is one
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise UnreadableFile(
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from exc
    except RecursionError:
        raise UnreadableFile("nested too deeply to parse") from None
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None)
        raise UnreadableFile(
            f"invalid YAML at {where}" + (f": {problem}" if problem else "")
        ) from exc
    except ValueError as exc:  # JSON (json.JSONDecodeError, orjson's, a repeated key)
        raise UnreadableFile(" ".join(str(exc).split())) from exc


def read_document(path: Path, parse: Callable[[str], Any] = load_yaml) -> Any:
    """:func:`read_data` of a file that must hold a document (a protocol, an alliance, a
    scenario): an empty file (or one of only comments) is refused as empty."""
    data = read_data(path, parse)
    if data is None:
        raise UnreadableFile("the file is empty (or holds only comments)")
    return data
