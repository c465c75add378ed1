"""Load protocol files; a broken file is refused with file, field and problem.

``load_library`` keeps going past broken files: the good protocols load, the
broken ones come back as errors next to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from schemas.config_files import UnreadableFile, read_document
from schemas.errors import field_errors
from schemas.protocol import Protocol

LIBRARY = Path(__file__).resolve().parent / "library"


class ProtocolFileError(ValueError):
    """A protocol file was refused; ``problems`` are ``field: problem`` lines."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def parse_protocol(data: object, path: Path) -> Protocol:
    if not isinstance(data, dict):
        raise ProtocolFileError(path, ["(file): expected a mapping of protocol fields"])
    try:
        return Protocol.model_validate(data, strict=False)
    except ValidationError as exc:
        raise ProtocolFileError(path, field_errors(exc)) from exc


def load_protocol(path: Path) -> Protocol:
    try:
        data = read_document(path)
    except UnreadableFile as exc:
        raise ProtocolFileError(path, [f"(file): cannot read: {exc}"]) from exc
    return parse_protocol(data, path)


@dataclass
class Library:
    protocols: dict[str, Protocol] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    errors: list[ProtocolFileError] = field(default_factory=list)

    def overdue(self, today: date) -> list[Protocol]:
        return [p for p in self.protocols.values() if p.review_overdue(today)]


def load_library(paths: list[Path] | None = None) -> Library:
    """Load every ``*.yaml`` protocol (default: the shipped library) in name order."""
    files: list[Path] = []
    for p in paths or [LIBRARY]:
        files += sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    library = Library()
    for path in files:
        try:
            protocol = load_protocol(path)
        except ProtocolFileError as exc:
            library.errors.append(exc)
            continue
        if protocol.id in library.protocols:
            library.errors.append(
                ProtocolFileError(
                    path, [f"id: {protocol.id!r} already defined in {library.paths[protocol.id]}"]
                )
            )
            continue
        library.protocols[protocol.id] = protocol
        library.paths[protocol.id] = path
    return library


def resolve_protocol(name_or_path: str, library: Library | None = None) -> Protocol:
    """A protocol by library id, or from a file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_protocol(path)
    lib = library or load_library()
    if name_or_path in lib.protocols:
        return lib.protocols[name_or_path]
    known = ", ".join(sorted(lib.protocols)) or "none"
    raise ProtocolFileError(path, [f"(name): no protocol {name_or_path!r}; known: {known}"])


def overdue_report(library: Library, today: date) -> list[str]:
    return [
        f"{p.id} v{p.version} (owner {p.owner}): review was due {p.review_due.isoformat()}, "
        f"{(today - p.review_due).days} days overdue"
        for p in sorted(library.overdue(today), key=lambda p: p.id)
    ]
