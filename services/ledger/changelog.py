"""The ledger's changelog record format (internal topic ``verbund.ledger.changelog``).

One batch of a partition becomes one or more JSON records::

    {"v": 1, "p": <partition>,
     "pos":   [[partner, as_of, event_id, [[site, material, unit, on_hand, safety, daily]]]],
     "need":  [[partner, need_id, site, material, unit, qty, needed_by, criticality, as_of, id]],
     "offer": [[partner, offer_id, site, capability, quals, hours, from, until, as_of, id]],
     "cneed": [[partner, need_id, site, capability, quals, hours, needed_by, crit, as_of, id]],
     "pdem":  [[partner, material, unit, quantity, as_of, id]],
     "ids":   [partner/event ids processed], "seen": {partner: newest occurred_at},
     "drop":  [[partner, site, material]]   positions dropped by the retention sweep,
     "rm":    [[partner, removed_at]]}      partners removed from the alliance (erasure)

``drop`` and ``rm`` are applied after the rows of their record, so replay ends in the same
state as the live ledger (a removed partner does not come back after a restart).

Positions are the final state of every key the batch changed, grouped by the event
that set them (partner, time and event id are written once per group, not per row).
Records hold at most ``CHANGELOG_ROWS`` rows; ``ids`` and ``seen`` go into the last
record only, so a crash between records never marks an event as seen whose rows
were not all written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from services.ledger.state import Applied, PartitionState

CHANGELOG_VERSION = 1
CHANGELOG_ROWS = 4_000  # keeps a record well under 1 MB


def encode_changelog(state: PartitionState, changes: Applied) -> list[bytes]:
    positions = state.positions
    groups: dict[tuple[str, float, str], list[tuple[Any, ...]]] = {}
    for key in changes.position_keys:
        unit, on_hand, safety, daily, as_of, event_id = positions[key]
        row = (key[1], key[2], unit, on_hand, safety, daily)
        group = groups.get((key[0], as_of, event_id))
        if group is None:
            groups[(key[0], as_of, event_id)] = [row]
        else:
            group.append(row)

    records: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    room = 0

    def next_record() -> None:
        nonlocal current, room
        current = {"v": CHANGELOG_VERSION, "p": state.partition}
        records.append(current)
        room = CHANGELOG_ROWS

    next_record()
    for (partner, as_of, event_id), rows in groups.items():
        start = 0
        while start < len(rows):
            if room == 0:
                next_record()
            part = rows[start : start + room]
            current.setdefault("pos", []).append([partner, as_of, event_id, part])
            start += len(part)
            room -= len(part)
    for kind, rows_of_kind in (("need", changes.needs), *changes.items.items()):
        for other in rows_of_kind:
            if room == 0:
                next_record()
            current.setdefault(kind, []).append(other)
            room -= 1
    current["ids"] = changes.event_ids
    if changes.seen:
        current["seen"] = changes.seen
    if changes.dropped:
        current["drop"] = changes.dropped
    if changes.removed:
        current["rm"] = [[partner, at] for partner, at in changes.removed.items()]
    return [orjson.dumps(record) for record in records]


def position_rows(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The position rows of a record as ``set_position`` arguments."""
    return [
        (partner, site, material, unit, on_hand, safety, daily, as_of, event_id)
        for partner, as_of, event_id, rows in record.get("pos", ())
        for site, material, unit, on_hand, safety, daily in rows
    ]
