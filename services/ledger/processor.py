"""Pure batch processing for the ledger: raw Kafka records in, changelog/alerts/dead letters out.

The Faust agent hands every batch to :meth:`LedgerProcessor.process` and only
does the I/O for what comes back.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.alerts import DeadLetter
from schemas.alliance import Alliance, CoverageThresholds, ShortageRules
from schemas.common import Criticality
from schemas.coordination import PartnerRemoved
from schemas.errors import field_errors
from schemas.events import (
    CapacityNeeded,
    CapacityOffered,
    NeedReported,
    OrderAcknowledged,
    PurchaseDemandReported,
    StockReported,
    parse_partner_event,
)
from services.common.dead_letters import kept_original
from services.ledger.changelog import encode_changelog
from services.ledger.records import PositionKey
from services.ledger.shortage import Change, Transition, assess
from services.ledger.state import Applied, PartitionState

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: How far a partner's ``occurred_at`` may be ahead of the ledger's clock (clock skew). An
#: event from further in the future is dead-lettered: stored, it would make every later real
#: report of the partner look out of order (and keep the partner "fresh" for years).
MAX_CLOCK_AHEAD_S = 15 * 60
BALANCES_PER_REPORT = 2_000


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed Kafka record, as the ledger sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass
class Outcome:
    """Everything a batch produced; the adapter writes it to Kafka."""

    changelog: dict[int, list[bytes]] = field(default_factory=dict)
    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, bytes]] = field(default_factory=list)
    ingested: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    positions: int = 0
    acknowledgements: list[OrderAcknowledged] = field(default_factory=list)
    removed_partners: list[str] = field(default_factory=list)
    expired_positions: int = 0


class Rejected(Exception):
    def __init__(self, reason: str, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.errors = errors or []


class LedgerProcessor:
    """Holds the state of the partitions this worker owns and processes batches for them."""

    def __init__(
        self,
        alliance: Alliance | None = None,
        service: str = "ledger",
        dedup_capacity: int = 200_000,
    ) -> None:
        self.alliance = alliance
        self.rules = alliance.shortage_rules if alliance else ShortageRules()
        self.service = service
        self.dedup_capacity = dedup_capacity
        self.states: dict[int, PartitionState] = {}
        self._thresholds: dict[str, CoverageThresholds] = {}

    # -- partitions -----------------------------------------------------------------------
    def has(self, partition: int) -> bool:
        return partition in self.states

    def restore_partition(self, partition: int, records: list[bytes], now: float) -> int:
        """Rebuild a partition from its changelog records; returns the number applied."""
        state = PartitionState(partition, self.dedup_capacity)
        touched: set[PositionKey] = set()
        for raw in records:
            record = orjson.loads(raw)
            touched |= state.restore(record)
        today = datetime.fromtimestamp(now, UTC).date()
        for key in touched:
            state.shortages.update(key, self._assess(state, key, today))
        state.balances.dirty.clear()
        self.states[partition] = state
        return len(records)

    def drop_partition(self, partition: int) -> None:
        self.states.pop(partition, None)

    def state(self, partition: int) -> PartitionState:
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = PartitionState(partition, self.dedup_capacity)
        return state

    # -- batches --------------------------------------------------------------------------
    def process(self, batch: list[Inbound], now: float) -> Outcome:
        out = Outcome()
        applied: dict[int, Applied] = {}
        for message in batch:
            try:
                event = self._validate(message, now)
                if isinstance(event, NeedReported):
                    conflict = self.state(message.partition).need_unit_conflict(event)
                    if conflict is not None:
                        raise Rejected("unit_mismatch", conflict)
            except Rejected as rejection:
                out.rejected[rejection.reason] += 1
                out.dead_letters.append(self._dead_letter(message, rejection, now))
                continue
            out.ingested[event.type] += 1
            if isinstance(event, OrderAcknowledged):
                out.acknowledgements.append(event)
                continue
            state = self.state(message.partition)
            if isinstance(event, PartnerRemoved):
                if event.command_id not in state.dedup:
                    removal = applied.setdefault(message.partition, Applied())
                    self._remove_partner(state, event, removal)
                    out.removed_partners.append(event.partner_id)
                continue
            if event.partner_id in state.removed:
                out.ignored["partner_removed"] += 1  # no dead letter: it would keep the data
                continue
            if state.has_event(event.partner_id, event.event_id):
                out.ignored["duplicate"] += 1
                continue
            changes = applied.get(message.partition)
            if changes is None:
                changes = applied[message.partition] = Applied()
            if isinstance(event, StockReported):
                state.apply_stock(event, changes)
                out.positions += len(event.positions)
            elif isinstance(event, NeedReported):
                state.apply_need(event, changes)
            elif isinstance(event, CapacityOffered):
                state.apply_offer(event, changes)
            elif isinstance(event, CapacityNeeded):
                state.apply_capacity_need(event, changes)
            elif isinstance(event, PurchaseDemandReported):
                state.apply_demand(event, changes)
        today = datetime.fromtimestamp(now, UTC).date()
        for partition, changes in applied.items():
            if changes.stale_positions:
                out.ignored["out_of_order"] += changes.stale_positions
            if not changes:
                continue
            out.changelog[partition] = encode_changelog(self.states[partition], changes)
            self._shortages(self.states[partition], changes, today, now, out)
        return out

    # -- erasure and retention ------------------------------------------------------------
    def _remove_partner(
        self, state: PartitionState, event: PartnerRemoved, changes: Applied
    ) -> None:
        """Drop the partner's state; what this batch already changed for it is dropped from
        the batch's changelog too (the record says ``rm``, replay ends in the same state)."""
        partner = event.partner_id
        keys = state.remove_partner(partner, event.at.timestamp())
        for key in [k for k in changes.position_keys if k[0] == partner]:
            del changes.position_keys[key]
        changes.needs = [row for row in changes.needs if row[0] != partner]
        changes.items = {
            kind: [row for row in rows if row[0] != partner] for kind, rows in changes.items.items()
        }
        changes.seen.pop(partner, None)
        for key in keys:
            changes.touched.add(key)
            changes.sources[key] = event.command_id
        changes.touched = {k for k in changes.touched if k[0] != partner or k in keys}
        changes.removed[partner] = event.at.timestamp()
        changes.event_ids.append(event.command_id)
        state.dedup.add(event.command_id)

    def sweep(self, now: float, position_max_age: float) -> Outcome:
        """Retention: drop positions not updated for ``position_max_age`` seconds, in every
        partition this worker holds; the drops go to the changelog (restarts agree) and
        shortages that rested on them resolve."""
        out = Outcome()
        cutoff = now - position_max_age
        today = datetime.fromtimestamp(now, UTC).date()
        source = f"retention-{int(now)}"
        for partition, state in self.states.items():
            expired = state.expired_positions(cutoff)
            if not expired:
                continue
            changes = Applied()
            for key in expired:
                state.remove_position(key)
                changes.dropped.append(list(key))
                changes.touched.add(key)
                changes.sources[key] = source
            out.expired_positions += len(expired)
            out.changelog[partition] = encode_changelog(state, changes)
            self._shortages(state, changes, today, now, out)
        return out

    def _validate(self, message: Inbound, now: float) -> Any:
        value = message.value
        if not value:
            raise Rejected("empty_message", "message has no value")
        if len(value) > MAX_MESSAGE_BYTES:
            raise Rejected(
                "too_large", f"message is {len(value)} bytes, limit is {MAX_MESSAGE_BYTES}"
            )
        if b'"PartnerRemoved"' in value and _type_of(value) == "PartnerRemoved":
            return self._removal(message, value)
        try:
            event = parse_partner_event(value)
        except ValidationError as exc:
            errors = field_errors(exc)
            if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
                raise Rejected("invalid_json", "message is not valid JSON", errors) from exc
            raise Rejected("invalid_event", "; ".join(errors[:5]), errors) from exc
        ahead = event.occurred_at.timestamp() - now
        if ahead > MAX_CLOCK_AHEAD_S:
            raise Rejected(
                "from_the_future",
                f"occurred_at {event.occurred_at.isoformat()} is {ahead / 60:.0f} min ahead of"
                f" the ledger's clock (at most {MAX_CLOCK_AHEAD_S // 60} min of clock skew)",
            )
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        if key != event.partner_id:
            raise Rejected(
                "key_mismatch",
                f"record key {key!r} is not the event's partner_id {event.partner_id!r}",
            )
        if self.alliance is not None:
            partner = self.alliance.partner(event.partner_id)
            if partner is None:
                raise Rejected("unknown_partner", f"partner {event.partner_id!r} is not a member")
            sites = {s.id for s in partner.sites}
            used = _sites_of(event)
            unknown = sorted(used - sites)
            if unknown:
                raise Rejected(
                    "unknown_site",
                    f"partner {event.partner_id!r} has no site(s) {', '.join(unknown)}",
                )
        return event

    @staticmethod
    def _removal(message: Inbound, value: bytes) -> PartnerRemoved:
        try:
            event = PartnerRemoved.model_validate_json(value)
        except ValidationError as exc:
            errors = field_errors(exc)
            raise Rejected("invalid_event", "; ".join(errors[:5]), errors) from exc
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        if key != event.partner_id:
            raise Rejected(
                "key_mismatch",
                f"record key {key!r} is not the removed partner_id {event.partner_id!r}",
            )
        return event

    def _dead_letter(
        self, message: Inbound, rejection: Rejected, now: float
    ) -> tuple[bytes, bytes]:
        original, omitted = kept_original(message.value)
        letter = DeadLetter(
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            source_key=message.key.decode("utf-8", "replace") if message.key is not None else None,
            reason=f"{rejection.reason}: {rejection.detail}"[:2000],
            errors=[*rejection.errors, *omitted],
            original_base64=original,
            service=self.service,
            received_at=datetime.fromtimestamp(now, UTC),
        )
        return message.topic.encode(), letter.model_dump_json().encode()

    # -- shortages ------------------------------------------------------------------------
    def _criticality(self, partner_id: str) -> Criticality:
        partner = self.alliance.partner(partner_id) if self.alliance else None
        return partner.criticality if partner else Criticality.NORMAL

    def _assess(self, state: PartitionState, key: PositionKey, today: date) -> Any:
        need_total = state.need_totals.get(key, 0.0)
        due: date | None = None
        if need_total > 0:
            due = min(
                (
                    date.fromisoformat(n.needed_by)
                    for (partner, _), n in state.needs.items()
                    if partner == key[0] and n.site_id == key[1] and n.material_id == key[2]
                ),
                default=None,
            )
        thresholds = self._thresholds.get(key[0])
        if thresholds is None:
            thresholds = self._thresholds[key[0]] = self.rules.thresholds(self._criticality(key[0]))
        return assess(state.positions.get(key), need_total, due, thresholds, today)

    def _shortages(
        self,
        state: PartitionState,
        changes: Applied,
        today: date,
        now: float,
        out: Outcome,
    ) -> None:
        position_keys = changes.position_keys
        need_keys = [k for k in changes.touched if k not in position_keys]
        for key in itertools.chain(position_keys, need_keys):
            change = state.shortages.update(key, self._assess(state, key, today))
            if change is None:
                continue
            out.transitions[change.transition.value] += 1
            alert = self._alert(state, change, now, changes.sources.get(key))
            if alert is not None:
                out.alerts.append((key[2].encode(), alert))

    def _alert(
        self, state: PartitionState, change: Change, now: float, source: str | None = None
    ) -> bytes | None:
        """The alert for a change, serialised directly (hot path when many positions move).

        The layout is the ShortageDetected / ShortageResolved contract; tests decode
        every alert with those models.
        """
        if change.transition is Transition.EASED:
            return None
        partner, site, material = change.key
        position = state.positions.get(change.key)
        if source is None:
            source = position.event_id if position else _latest_need_event(state, change.key)
        at = _iso(now)
        common = {
            "alert_id": _alert_id(source, change),
            "partner_id": partner,
            "site_id": site,
            "material_id": material,
        }
        if change.transition is Transition.RESOLVED:
            assert change.previous is not None
            return orjson.dumps(
                {
                    "type": "ShortageResolved",
                    **common,
                    "previous_severity": change.previous.value,
                    "resolved_at": at,
                    "source_event_id": source,
                }
            )
        assert change.severity is not None
        return orjson.dumps(
            {
                "type": "ShortageDetected",
                **common,
                "unit": position.unit if position else _need_unit(state, change.key),
                "severity": change.severity.value,
                "previous_severity": change.previous.value if change.previous else None,
                "causes": list(change.causes),
                "criticality": self._criticality(partner).value,
                "on_hand": position.on_hand if position else 0.0,
                "safety_stock": position.safety_stock if position else 0.0,
                "coverage_days": position.coverage_days if position else None,
                "need_quantity": state.need_totals.get(change.key, 0.0),
                "detected_at": at,
                "source_event_id": source,
            }
        )

    # -- material balance -----------------------------------------------------------------
    def balance_reports(self, now: float) -> list[tuple[bytes, bytes]]:
        """One MaterialBalancesReported per partition (chunked) for materials that changed."""
        at = _iso(now)
        reports = []
        for partition, state in sorted(self.states.items()):
            changed = state.balances.take_dirty()
            for i in range(0, len(changed), BALANCES_PER_REPORT):
                balances = [
                    {
                        "material_id": b.material_id,
                        "unit": b.unit,
                        "total_need": b.total_need,
                        "total_surplus": b.total_surplus,
                        "partners": b.partners,
                    }
                    for b in changed[i : i + BALANCES_PER_REPORT]
                ]
                report = {
                    "type": "MaterialBalancesReported",
                    "partition": partition,
                    "balances": balances,
                    "reported_at": at,
                }
                reports.append((f"balances-{partition}".encode(), orjson.dumps(report)))
        return reports


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


def _sites_of(event: Any) -> set[str]:
    if isinstance(event, StockReported):
        return {p.site_id for p in event.positions}
    site = getattr(event, "site_id", None)
    return {site} if site else set()


def _latest_need_event(state: PartitionState, key: PositionKey) -> str:
    latest = max(
        (
            n
            for (p, _), n in state.needs.items()
            if p == key[0] and n.site_id == key[1] and n.material_id == key[2]
        ),
        key=lambda n: n.as_of,
        default=None,
    )
    return latest.event_id if latest else "unknown-source"


def _need_unit(state: PartitionState, key: PositionKey) -> str:
    for (partner, _), need in state.needs.items():
        if partner == key[0] and need.site_id == key[1] and need.material_id == key[2]:
            return need.unit
    return "pcs"


def _alert_id(source: str, change: Change) -> str:
    digest = hashlib.sha256(
        "|".join([source, *change.key, change.transition.value, str(change.severity)]).encode()
    ).hexdigest()[:32]
    return f"al-{digest}"


def _type_of(value: bytes) -> object:
    """The ``type`` of a JSON object (None when it is not one): the byte test in
    ``_validate`` is only a cheap filter, a partner's free text may contain the word."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return document.get("type") if isinstance(document, dict) else None
