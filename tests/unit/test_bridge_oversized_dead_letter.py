"""A dead letter too large for the dead-letter topic (the original bytes base64-encoded grow
by a third: an invalid partner record of ~800 KB under Apache Kafka's default 1 MiB limit) is
still written, with its reason and source, without the original bytes."""

from __future__ import annotations

import base64
from pathlib import Path

from aiokafka.errors import MessageSizeTooLargeError

from schemas.alerts import DeadLetter
from services.common.topics import DEAD_LETTERS, PARTNER_EVENTS
from tests.unit.bridge.test_service import EVENTS, FakeProducer, _bridge, _event, _records

LIMIT = 1 << 20  # the broker's message.max.bytes


def _refuse_large(n: int, topic: str, sizes: list[int]) -> MessageSizeTooLargeError | None:
    return MessageSizeTooLargeError() if sizes[n] > LIMIT else None


async def test_a_dead_letter_too_large_for_the_topic_is_kept_without_the_original(
    tmp_path: Path,
) -> None:
    sizes: list[int] = []

    class SizeLimitedProducer(FakeProducer):
        async def send(self, topic, value, key, timestamp_ms=None):  # type: ignore[no-untyped-def]
            sizes.append(len(value))
            return await super().send(topic, value, key, timestamp_ms)

    producer = SizeLimitedProducer(lambda n, t: _refuse_large(n, t, sizes))
    bridge, consumer = _bridge(tmp_path, producer)
    bad = b"{" + b" " * 900_000  # invalid JSON, under the limit itself
    await bridge.handle({EVENTS: _records(bad, _event(1))})

    topics = sorted(t for t, _ in producer.acked)  # the slim letter goes in a second pass
    assert topics == sorted([DEAD_LETTERS.name, PARTNER_EVENTS.name]), topics
    (value,) = [v for t, v in producer.acked if t == DEAD_LETTERS.name]
    letter = DeadLetter.model_validate_json(value)
    assert letter.reason.startswith("invalid_json: ")
    assert (letter.source_topic, letter.source_offset) == (EVENTS.topic, 10)
    assert base64.b64decode(letter.original_base64) == b""
    assert any(f"{len(bad)} bytes" in e for e in letter.errors), letter.errors
    assert consumer.commits == [({EVENTS: 12}, 2)]


async def test_a_dead_letter_that_fits_keeps_the_original(tmp_path: Path) -> None:
    producer = FakeProducer()
    bridge, _ = _bridge(tmp_path, producer)
    await bridge.handle({EVENTS: _records(b"{bad")})
    letter = DeadLetter.model_validate_json(producer.acked[0][1])
    assert base64.b64decode(letter.original_base64) == b"{bad"
    assert letter.errors == []
