"""Run records on disk: what is needed to reproduce every decision (``verbund replay``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from protocols.run import RunRecord
from schemas.protocol import Protocol
from schemas.scenario import Scenario


class RecordError(ValueError):
    """A recorded run file that cannot be read as a run record; the message names it."""


class RunStore:
    """Run records per run and revision. With ``retention_days`` (setting
    ``VERBUND_RETENTION_DECISIONS_DAYS``) :meth:`expire` deletes runs whose newest record is
    older: decisions are reproducible for that long, and the snapshots they hold (every
    partner's positions at the time) do not outlive it."""

    def __init__(self, directory: Path, retention_days: float | None = None) -> None:
        self.directory = directory
        self.retention_days = retention_days

    def expire(self, now: float) -> list[str]:
        """Delete the runs whose newest record is older than the retention; their ids."""
        if self.retention_days is None or not self.directory.is_dir():
            return []
        cutoff = now - self.retention_days * 86_400
        expired = []
        for folder in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            records = list(folder.glob("r*.json"))
            if records and max(r.stat().st_mtime for r in records) < cutoff:
                for path in folder.iterdir():
                    path.unlink()
                folder.rmdir()
                expired.append(folder.name)
        return expired

    def path(self, run_id: str, revision: int) -> Path:
        return self.directory / run_id / f"r{revision}.json"

    def save(
        self,
        record: RunRecord,
        revision: int,
        protocol: Protocol,
        snapshot: Scenario,
        offsets: dict[int, int],
        snapshot_json: bytes = b"",
    ) -> Path:
        """Write record + protocol + snapshot atomically (tmp file, fsync, rename).

        ``snapshot_json``: the snapshot's canonical JSON when the caller has it (the run
        hashed exactly these bytes); otherwise the snapshot is serialised here."""
        path = self.path(record.run_id, revision)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "record": record.model_dump(mode="json"),
            "revision": revision,
            "protocol": protocol.model_dump(mode="json"),
            "snapshot": orjson.Fragment(snapshot_json or snapshot.to_json_bytes()),
            "changelog_offsets": {str(p): o for p, o in sorted(offsets.items())},
        }
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        return path

    def load(self, run_id: str, revision: int | None = None) -> dict[str, Any]:
        folder = self.directory / run_id
        if not folder.is_dir():
            raise FileNotFoundError(f"no recorded run {run_id} in {self.directory}")
        if revision is None:
            revisions = sorted(
                int(p.stem[1:]) for p in folder.glob("r*.json") if p.stem[1:].isdigit()
            )
            if not revisions:
                raise FileNotFoundError(f"run {run_id} has no recorded revision")
            revision = revisions[-1]
        path = self.path(run_id, revision)
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id} has no recorded revision {revision}")
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"{path}: not a run record (invalid JSON: {exc})") from None
        if not isinstance(data, dict) or not {"record", "protocol", "snapshot"} <= data.keys():
            raise RecordError(f"{path}: not a run record (record, protocol or snapshot missing)")
        return data
