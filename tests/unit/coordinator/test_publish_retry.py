"""A decision the broker refuses to take is published again on the coordinator's next ticks
(Kafka faked at the edge: a producer that refuses while the broker is 'down')."""

from __future__ import annotations

from pathlib import Path

import orjson

from protocols.run import solve
from schemas.coordination import RunState
from services.common.topics import DECISIONS, PARTNER_ORDERS
from services.coordinator.checkpoint import Checkpoints, run_from_document
from services.coordinator.service import CoordinatorService
from services.coordinator.store import RunStore
from tests.unit.coordinator.fake_producer import FakeProducer
from tests.unit.coordinator.test_live_capacity_purchasing import (
    ALLIANCE,
    CAPACITY,
    CAPACITY_EVENTS,
    NOW,
    replica_after,
    snapshot_of,
)


async def test_a_refused_decision_is_published_again_with_the_same_orders(tmp_path: Path) -> None:
    service = CoordinatorService(
        "127.0.0.1:1",
        ALLIANCE,
        {CAPACITY.id: CAPACITY},
        RunStore(tmp_path / "runs"),
        checkpoints=Checkpoints(tmp_path / "state"),
    )
    producer = FakeProducer()
    producer.gate.set()
    producer.down = True
    service.producer = producer  # type: ignore[assignment]
    run, _, _ = service.core.trigger(CAPACITY.id, "manual", NOW)
    result = solve(CAPACITY, snapshot_of(replica_after(CAPACITY_EVENTS), CAPACITY))
    messages = service.core.solved(run.run_id, result, 0.01, NOW)
    await service._save_run(run.run_id)
    issued = {
        orjson.loads(m.value)["order_id"] for m in messages if m.topic == PARTNER_ORDERS.name
    }
    assert issued

    await service._publish_decision(run.run_id, run.revision, messages)
    assert run.publish_pending and run.state is RunState.PUBLISHED
    assert producer.sent == []
    # the checkpoint on disk says so too: a restart would publish it again
    document = orjson.loads((tmp_path / "state" / f"{run.run_id}.json").read_bytes())
    assert run_from_document(document).publish_pending

    await service._republish()  # a tick while the broker is still down: nothing changes
    assert run.publish_pending and producer.sent == []

    producer.down = False
    await service._republish()  # the next tick
    assert not run.publish_pending
    topics = [m["topic"] for m in producer.sent]
    assert topics[0] == DECISIONS.name
    again = {m["order_id"] for m in producer.sent if m["topic"] == PARTNER_ORDERS.name}
    assert again == issued
    document = orjson.loads((tmp_path / "state" / f"{run.run_id}.json").read_bytes())
    assert not run_from_document(document).publish_pending
    await service._republish()  # nothing left to publish
    assert [m["topic"] for m in producer.sent] == topics
