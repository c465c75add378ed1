"""The operations page in real headless Chromium (Debian ``chromium``, driven by Playwright;
no browser is downloaded) against real broker, ledger, coordinator and console processes.

Sign in with a coordinator token; a stock event sent over Kafka puts a critical shortage on
the board without a reload; a run that needs one coordinator's approval is approved with a
click and its state changes on the page; the screenshot goes to test-artifacts/console.png.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.console_stack import (
    ConsoleStack,
    console_stack,
    http,
    need,
    protocol,
    send_event,
    stock,
)
from tests.missing import missing_component

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MATERIAL = "ICU-SALINE-500"
OTHER = "GLOVES-NITRILE"
PROTOCOL_ID = "icu-saline-approval"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    directory = tmp_path_factory.mktemp("console-browser")
    with console_stack(directory, {"p": protocol(PROTOCOL_ID, MATERIAL)}) as s:
        yield s


@pytest.fixture(scope="module")
async def producer(stack: ConsoleStack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        missing_component(
            f"{CHROMIUM} missing: run `sh scripts/install-test-deps.sh chromium` as root"
        )
    try:
        playwright_api = importlib.import_module("playwright.async_api")
    except ImportError as exc:
        missing_component(f"playwright not importable: {exc}")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1440, "height": 1000})
            tab = await context.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            await browser.close()


async def test_board_live_update_and_approval_click(
    stack: ConsoleStack, producer: AIOKafkaProducer, page: Any, artifacts: Path
) -> None:
    await page.goto(stack.console_url + "/")
    assert await page.is_visible("#login-form") and not await page.is_visible("#main")
    # sign in: a wrong token is refused, a coordinator's token opens the page
    await page.fill("#token", "vbd_not-a-token")
    await page.click("#login-button")
    await page.wait_for_function(
        "document.getElementById('login-error').textContent.includes('not valid')"
    )
    await page.fill("#token", stack.tokens["coord-anna"])
    await page.click("#login-button")
    await page.wait_for_selector("#main:not([hidden])")
    assert not await page.is_visible("#login-form")
    assert "coord-anna" in await page.inner_text("#who")
    await page.wait_for_selector("#live.on")
    assert (
        await page.evaluate("sessionStorage.getItem('verbund.console.token')")
        == (stack.tokens["coord-anna"])
    )
    # a marker that a reload would wipe out
    await page.evaluate("window.__noReload = 'still here'")

    # a stock event sent over Kafka: 1 day of coverage at a hospital is a critical shortage
    await send_event(producer, stock("klinik-sued", MATERIAL, 10, 50, 10))
    critical = f'td.cell[data-material="{MATERIAL}"][data-region="DE-BY"][data-severity="critical"]'
    await page.wait_for_selector(critical)
    assert (await page.inner_text(critical)).startswith("1")
    # more of the alliance for a readable board: a watch and a below-safety-stock shortage
    await send_event(producer, stock("klinik-west", MATERIAL, 60, 50, 5))
    await send_event(producer, stock("klinik-west", OTHER, 300, 400, 10))
    await page.wait_for_selector(
        f'td.cell[data-material="{OTHER}"][data-region="DE-NW"][data-severity="shortage"]'
    )
    await page.wait_for_selector('tr.stale[data-partner="silent-partner"]')
    assert await page.get_attribute('tr[data-partner="klinik-sued"]', "data-stale") == "false"

    # a run that needs one coordinator's approval, triggered through the coordinator API
    await send_event(producer, stock("pharma-depot", MATERIAL, 900, 100, 5))
    await send_event(producer, need("klinik-sued", MATERIAL, 80))
    status, run = http(
        f"{stack.coordinator_url}/v1/protocols/{PROTOCOL_ID}/runs",
        "POST",
        stack.tokens["coord-ben"],
        {"reason": "ICU saline below three days"},
    )
    assert status == 202 and run["state"] == "awaiting_approval", run
    row = f'tr[data-run-id="{run["run_id"]}"]'
    await page.wait_for_selector(f'{row}[data-state="awaiting_approval"] button[data-action]')
    await page.click(f'{row} button[data-action="approve"]')
    await page.wait_for_function(
        """(selector) => {
            const row = document.querySelector(selector);
            return row && ["solving", "published", "completed"].includes(row.dataset.state);
        }""",
        arg=row,
    )
    # the decision and its order arrive on the page too; the donor must answer
    order = f'.decision[data-run-id="{run["run_id"]}"] tr[data-order-id]'
    await page.wait_for_selector(order)
    assert "pharma-depot -> klinik-sued" in await page.inner_text(order)
    await page.wait_for_selector(f'{row}[data-state="published"]')
    assert not await page.is_visible(f"{row} button[data-action]")
    assert "Approved" in await page.inner_text("#message")
    assert await page.evaluate("window.__noReload") == "still here"

    status, detail = http(
        f"{stack.coordinator_url}/v1/runs/{run['run_id']}", token=stack.tokens["coord-ben"]
    )
    assert status == 200 and detail["approvals"] == ["coord-anna"], detail

    await page.screenshot(path=str(artifacts / "console.png"), full_page=True)
    assert (artifacts / "console.png").stat().st_size > 10_000


async def test_partner_login_sees_only_its_own_data(
    stack: ConsoleStack, producer: AIOKafkaProducer, page: Any, artifacts: Path
) -> None:
    """klinik-sued signs in with its own token: its positions, needs and the order that
    involves it (the donor by name, the quantity) -- nothing of the donor's stock, no other
    partner, no alliance board, runs, freshness or decisions."""
    # the donor's stock: a figure klinik-sued must never see
    await send_event(producer, stock("pharma-depot", MATERIAL, 987, 100, 5))
    await send_event(producer, stock("klinik-west", OTHER, 333, 400, 10))
    await page.goto(stack.console_url + "/")
    await page.fill("#token", stack.tokens["klinik-sued"])
    await page.click("#login-button")
    await page.wait_for_selector("#main:not([hidden])")
    assert "klinik-sued (partner)" in await page.inner_text("#who")
    position = f'#mine tr[data-position="{MATERIAL}"]'
    await page.wait_for_selector(position)
    assert "10" in await page.inner_text(position)
    await page.wait_for_selector('#mine tr[data-need="need-icu-saline-500"]')
    order = "#mine tr[data-order-id]"
    await page.wait_for_selector(order)
    text = await page.inner_text(order)
    assert "Pharma Depot" in text and "receive" in text
    await page.wait_for_selector("#live.on")
    await page.wait_for_timeout(1500)  # let the newest views arrive
    body = await page.inner_text("body")
    for foreign in ("987", "900", "333", "klinik-west", "Klinik West", "silent-partner"):
        assert foreign not in body, foreign
    for view in ("board", "aggregates", "runs", "freshness", "decisions"):
        assert not await page.is_visible(f'section[data-view="{view}"]'), view
    assert await page.is_visible('section[data-view="mine"]')
    # and the API refuses the alliance-wide views to a partner
    for path in ("/v1/board", "/v1/aggregates", "/v1/decisions", "/v1/freshness"):
        status, _ = http(stack.console_url + path, token=stack.tokens["klinik-sued"])
        assert status == 403, path
    status, mine = http(stack.console_url + "/v1/mine", token=stack.tokens["klinik-sued"])
    assert status == 200 and mine["partner"] == "klinik-sued"
    assert "987" not in str(mine) and "pharma-depot" not in str(mine)
    await page.screenshot(path=str(artifacts / "console-partner.png"), full_page=True)
