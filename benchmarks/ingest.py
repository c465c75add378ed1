"""Ingest benchmark: >= 1 million stock positions through the ledger on the embedded broker.

Prints positions/s and messages/s per ledger worker next to a baseline measured in the
same run on the same messages: a raw aiokafka consumer that only validates them with
the same pydantic models. The ledger keeps its state durably (changelog written and
acknowledged before offsets are committed), so its figure includes that cost.

    python benchmarks/ingest.py [--positions 1000000] [--per-message 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.events import parse_partner_event  # noqa: E402
from services.common.broker import EmbeddedBroker, free_port  # noqa: E402
from services.common.kafka import ensure_topics  # noqa: E402
from services.common.topics import PARTNER_EVENTS  # noqa: E402


def _on_hand(index: int) -> float:
    """About 2 % of positions below safety stock / coverage thresholds, the rest healthy."""
    r = (index * 2654435761) % 1000
    if r < 20:
        return float(r)
    return 100.0 + 12.5 * (10 + r % 30)


def build_messages(total: int, per_message: int, partners: int) -> list[tuple[bytes, bytes]]:
    """StockReported exports: each partner exports its materials in chunks of ``per_message``."""
    messages = []
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    count = 0
    i = 0
    while count < total:
        partner = f"bench-{i % partners:04d}"
        n = min(per_message, total - count)
        positions = [
            {
                "site_id": f"s{(i // partners) % 3}",
                "material_id": f"MAT-{(count + k) % 5000:05d}",
                "unit": "pcs",
                "on_hand": _on_hand(count + k),
                "safety_stock": 100.0,
                "daily_consumption": 12.5,
            }
            for k in range(n)
        ]
        event = {
            "type": "StockReported",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "partner_id": partner,
            "occurred_at": (t0 + timedelta(seconds=i)).isoformat(),
            "positions": positions,
        }
        messages.append((partner.encode(), orjson.dumps(event)))
        count += n
        i += 1
    return messages


async def produce(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=4 << 20,
        max_request_size=8 << 20,
    )
    await producer.start()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(PARTNER_EVENTS.name, value, key=key))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def baseline(bootstrap: str, expected_messages: int) -> tuple[float, int, int]:
    """Raw aiokafka consumer validating every message; returns (seconds, messages, positions)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(PARTNER_EVENTS.name, p) for p in range(PARTNER_EVENTS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages = positions = 0
        started = None
        while messages < expected_messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event = parse_partner_event(record.value)
                    positions += len(event.positions)  # type: ignore[union-attr]
                    messages += 1
        assert started is not None
        return time.perf_counter() - started, messages, positions
    finally:
        await consumer.stop()


def scrape(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_ledgers(bootstrap: str, workers: int, total_positions: int, workdir: Path) -> float:
    """Start ``workers`` ledger processes; seconds from first to last position processed."""
    ports = [free_port() for _ in range(workers)]
    procs = []
    for index, port in enumerate(ports):
        env = {
            **os.environ,
            "VERBUND_KAFKA_BOOTSTRAP": bootstrap,
            "VERBUND_METRICS_PORT": str(port),
            "VERBUND_GROUP_ID": "bench-ledger",
            "VERBUND_LOG_LEVEL": "WARNING",
            "VERBUND_KAFKA_SESSION_TIMEOUT": "10",
        }
        log = open(workdir / f"ledger-{index}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "ledger"],
                env=env,
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        )
    try:
        started = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum(scrape(p, "verbund_positions_ingested_total") for p in ports)
            if started is None and done > 0:
                started = time.perf_counter()
            if done >= total_positions:
                assert started is not None
                return time.perf_counter() - started
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a ledger worker died; see {workdir}")
            time.sleep(0.25)
        raise SystemExit(f"ledger did not finish within 900 s; see {workdir}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--per-message", type=int, default=200)
    parser.add_argument("--partners", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    messages = build_messages(args.positions, args.per_message, args.partners)
    size = sum(len(v) for _, v in messages)
    print(
        f"data: {args.positions:,} positions in {len(messages):,} messages "
        f"({size / 1e6:.0f} MB), {args.partners} partners, {PARTNER_EVENTS.partitions} partitions"
    )
    workdir = Path(tempfile.mkdtemp(prefix="verbund-bench-"))
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        t = time.perf_counter()
        asyncio.run(produce(broker.bootstrap, messages))
        print(f"produced in {time.perf_counter() - t:.1f} s")

        b_secs, b_msgs, b_pos = asyncio.run(baseline(broker.bootstrap, len(messages)))
        b_rate = b_pos / b_secs
        print(
            f"baseline (raw aiokafka + pydantic validation): {b_secs:.2f} s, "
            f"{b_rate:,.0f} positions/s, {b_msgs / b_secs:,.0f} messages/s"
        )

        l_secs = run_ledgers(broker.bootstrap, args.workers, args.positions, workdir)
        l_rate = args.positions / l_secs
        per_worker = l_rate / args.workers
        print(
            f"ledger ({args.workers} worker(s), faust, durable changelog): {l_secs:.2f} s, "
            f"{l_rate:,.0f} positions/s total, {per_worker:,.0f} positions/s per worker, "
            f"{len(messages) / l_secs / args.workers:,.0f} messages/s per worker"
        )
        print(
            f"ratio ledger per worker / baseline: {per_worker / b_rate:.2f} "
            f"(target >= 0.25; per-worker target >= 100,000 positions/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
