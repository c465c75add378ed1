"""Reading a configuration or data file (YAML or JSON) into plain data, with one plain-words
reason when that fails. Each loader adds its file kind and raises its own error type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


class UnreadableFile(ValueError):
    """Why a file's text could not be turned into data (the message names no file)."""


def read_data(path: Path, parse: Callable[[str], Any] = yaml.safe_load) -> Any:
    """``parse`` (YAML by default) of the file's UTF-8 text."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:  # before ValueError: it is one
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise UnreadableFile(
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from exc
    except RecursionError:
        raise UnreadableFile("nested too deeply to parse") from None
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UnreadableFile(f"invalid YAML at {where}") from exc
    except ValueError as exc:  # JSON (orjson.JSONDecodeError)
        raise UnreadableFile(" ".join(str(exc).split())) from exc


def read_document(path: Path, parse: Callable[[str], Any] = yaml.safe_load) -> Any:
    """:func:`read_data` of a file that must hold a document (a protocol, an alliance, a
    scenario): an empty file (or one of only comments) is refused as empty."""
    data = read_data(path, parse)
    if data is None:
        raise UnreadableFile("the file is empty (or holds only comments)")
    return data
