"""Metrics and logs carry no per-partner stock figures: every service's /metrics is scraped
in a live run (ledger, coordinator, console) and every JSON log line is read."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.console_stack import (
    ConsoleStack,
    alliance,
    console_stack,
    http,
    need,
    poll,
    protocol,
    send_event,
    stock,
)

pytestmark = pytest.mark.integration

MATERIAL = "ICU-SALINE-500"
# distinctive figures: if any shows up next to a partner id, a stock figure leaked
FIGURES = {"klinik-sued": (4321.0, 4400.0), "pharma-depot": (98765.0, 1234.0)}
PARTNERS = {p["id"] for p in alliance()["partners"]}
STOCK_WORDS = re.compile(r"on_hand|stock|safety|surplus|need|quantity|position|coverage")
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    directory = tmp_path_factory.mktemp("no-figures")
    with console_stack(directory, {"p": protocol("figures", MATERIAL)}) as s:
        yield s


@pytest.fixture(scope="module")
async def producer(stack: ConsoleStack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def all_metrics(stack: ConsoleStack) -> dict[str, str]:
    texts = {name: proc.metrics() for name, proc in stack.processes.items() if name == "ledger"}
    texts["coordinator"] = scrape(stack.coordinator_url + "/metrics")
    texts["console"] = scrape(stack.console_url + "/metrics")
    return texts


def leaks(text: str) -> list[str]:
    """Samples whose labels name a partner and whose metric is a stock quantity, or whose
    value is one of a partner's stock figures."""
    figures = {v for values in FIGURES.values() for v in values}
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if line.startswith("#") or match is None:
            continue
        labels = dict(LABEL.findall(match["labels"] or ""))
        partnered = any(v in PARTNERS for v in labels.values())
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if partnered and (STOCK_WORDS.search(match["name"]) or value in figures):
            found.append(line)
    return found


def test_leak_detector_finds_a_leak() -> None:
    assert leaks('verbund_stock_on_hand{partner="klinik-sued",material="X"} 4321.0')
    assert leaks('verbund_anything{partner="pharma-depot"} 98765')
    assert not leaks('verbund_partner_data_age_seconds{partner="klinik-sued"} 12.5')


async def test_metrics_and_logs_hold_no_partner_stock(
    stack: ConsoleStack, producer: AIOKafkaProducer
) -> None:
    for partner, (on_hand, safety) in FIGURES.items():
        await send_event(producer, stock(partner, MATERIAL, on_hand, safety, 1000))
    await send_event(producer, need("klinik-sued", MATERIAL, 321))
    token = stack.tokens["coord-anna"]
    await poll(
        lambda: http(stack.console_url + "/v1/board", token=token)[1],
        lambda board: isinstance(board, dict) and board.get("open", 0) >= 1,
        timeout=90,
    )
    status, run = http(
        f"{stack.coordinator_url}/v1/protocols/figures/runs", "POST", token, {"reason": "t"}
    )
    assert status == 202, run
    http(f"{stack.coordinator_url}/v1/runs/{run['run_id']}/approve", "POST", token, {})
    await poll(
        lambda: http(f"{stack.coordinator_url}/v1/runs/{run['run_id']}", token=token)[1],
        lambda r: isinstance(r, dict) and r.get("state") in ("published", "completed"),
        timeout=90,
    )
    texts = all_metrics(stack)
    assert "verbund_partner_data_age_seconds" in texts["ledger"]  # partner labels exist ...
    for service, text in texts.items():
        assert leaks(text) == [], (service, leaks(text)[:5])  # ... but never with stock

    figures = [f"{v:g}" for values in FIGURES.values() for v in values]
    for name, proc in stack.processes.items():
        lines = [line for line in Path(proc.log_path).read_text().splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # non-JSON output of libraries (tracebacks would show up above)
            flat = json.dumps(record)
            for key in ("on_hand", "safety_stock"):
                assert f'"{key}"' not in flat, (name, line)
            for figure in figures:
                assert not re.search(rf"\b{re.escape(figure)}\b", flat), (name, figure, line)
