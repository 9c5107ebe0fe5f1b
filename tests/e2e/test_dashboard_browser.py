"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright), served by
uvicorn on a real port over the real stack: the page loads, shows the usage report's figures,
draws its charts, links to the Web UI, and logs no error and makes no failed or outside request."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn

from contracts.models import PlanRequest
from crm.app import create_app
from crm.dashboard import budget_status
from crm.intake import Intake
from domain.budgets import BudgetScope, BudgetSpec, Period
from service import starts
from storage import budgets, usage
from tests.conftest import venv_binary
from tests.e2e.test_business_plan_e2e import new_client
from wavelaunch.console import money

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags a probe showed Chromium needs on a closed network (no background fetches to hang on).
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
TOKEN = "dashboard-test-token"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(pool, client, settings) -> AsyncIterator[str]:
    """The app on a real port (uvicorn in this event loop), as `wavelaunch api` serves it."""
    app = create_app(Intake(pool, client, settings), secret="whsec-test", max_age_seconds=300, api_token=TOKEN)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the reason it did not start
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class PageWatch:
    """Everything that went wrong on a page: console errors, page errors, failed or outside requests."""

    def __init__(self, page, base: str):
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.on(
            "request",
            lambda r: r.url.startswith((base, "data:")) or self.problems.append(f"outside request: {r.url}"),
        )


async def figure(page, element_id: str) -> tuple[str, str]:
    el = page.locator(f"#{element_id}")
    return await el.inner_text(), await el.get_attribute("data-value")


async def cli_usage_report(database_url: str, temporal_env, state_dir: Path) -> dict:
    """The real CLI, in its own process, on the test's Postgres and Temporal."""
    env = os.environ | {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "WAVELAUNCH_STATE_DIR": str(state_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        venv_binary("wavelaunch"), "usage", "report", "--json", env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_the_dashboard_shows_the_usage_reports_figures(
    served, browser, pool, client, settings, worker, database_url, temporal_env, tmp_path
):
    client_id = await new_client(pool)
    # This client's budget: a gauge, and (alerting at 1%) an alert when its plan crosses it.
    daily = BudgetSpec(
        scope=BudgetScope.CLIENT, client_id=client_id, period=Period.DAILY, token_limit=100_000, thresholds=[1]
    )
    await budgets.set_budget(pool, daily)
    for _ in range(2):  # the second run reuses every section: cache hits for the hit-rate chart
        handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level="essential"))
        await handle.result()

    page = await browser.new_page()
    watch = PageWatch(page, served)
    await page.goto(f"{served}/dashboard?token={TOKEN}")
    await page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30000)
    # What `wavelaunch usage report --json` prints for the same database, after the page read it.
    report = await cli_usage_report(database_url, temporal_env, tmp_path)
    assert report["totals"] == json.loads(json.dumps(await usage.report(pool), default=str))["totals"]
    totals = report["totals"]
    documents = await pool.fetchval("SELECT count(*) FROM documents")

    assert "token" not in page.url  # taken from the address bar once, kept in the tab only
    assert await figure(page, "total-tokens") == (f"{totals['total_tokens']:,}", str(totals["total_tokens"]))
    assert await figure(page, "baseline-tokens") == (f"{totals['baseline_tokens']:,}", str(totals["baseline_tokens"]))
    assert await figure(page, "saved-tokens") == (f"{totals['saved_tokens']:,}", str(totals["saved_tokens"]))
    text, value = await figure(page, "total-cost")
    assert text == money(totals["cost"]) and float(value) == pytest.approx(totals["cost"])
    text, value = await figure(page, "saved-cost")
    assert text == money(totals["saved_cost"]) and float(value) == pytest.approx(totals["saved_cost"])
    text, value = await figure(page, "hit-rate")
    assert text == f"{100 * totals['cache_hit_rate']:.1f}%" and float(value) == pytest.approx(totals["cache_hit_rate"])
    assert await figure(page, "calls") == (f"{totals['calls']:,}", str(totals["calls"]))
    assert await figure(page, "documents") == (f"{documents:,}", str(documents))

    # The plots are SVG with one bar per figure, carrying the report's values.
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    bar = page.locator('#spend-chart svg rect[data-series="ours"][data-category="' + today + '"]')
    assert float(await bar.get_attribute("data-value")) == pytest.approx(report["by_day"][today]["cost"])
    naive_bar = page.locator('#tokens-chart svg rect[data-series="naive"]')
    assert int(await naive_bar.get_attribute("data-value")) == totals["baseline_tokens"]
    tiers = {
        await r.get_attribute("data-category"): float(await r.get_attribute("data-value"))
        for r in await page.locator("#hit-chart svg rect").all()
    }
    assert tiers == pytest.approx(report["cache_hit_rate_by_tier"]) and tiers
    kinds = {
        await r.get_attribute("data-category"): float(await r.get_attribute("data-value"))
        for r in await page.locator('#kind-chart svg rect[data-series="ours"]').all()
    }
    assert kinds["business_plan"] == pytest.approx(report["by_document_type"]["business_plan"]["cost"])
    service_tiers = {
        await r.get_attribute("data-category"): float(await r.get_attribute("data-value"))
        for r in await page.locator("#service-tier-chart svg rect").all()
    }
    billed = {k: v["cost"] for k, v in report["by_service_tier"].items() if k != "-"}
    assert service_tiers == pytest.approx(billed) and "standard" in service_tiers
    # One gauge per budget, showing its use; the threshold alert is listed.
    shown = await budget_status(pool)
    await budgets.remove(pool, BudgetScope.CLIENT, client_id, None)
    mine = next(b for b in shown if b["budget"] == f"client {client_id}")
    gauge = page.locator(f'#budgets svg[data-value="{mine["use_ratio"]}"]')
    assert await gauge.count() >= 1 and mine["use_ratio"] > 0.01
    assert f"client {client_id}" in await page.locator("#budgets").inner_text()
    assert f"client {client_id}" in await page.locator("#alerts").inner_text()

    # The client's new plan waits for review (a draft), and the counts cover it.
    assert "draft" in await page.locator(f'#reviews tr:has-text("{client_id}")').inner_text()
    assert "draft" in await page.locator("#review-counts").inner_text()

    # Recent generations link to the Temporal Web UI.
    links = {await a.inner_text(): await a.get_attribute("href") for a in await page.locator("a.workflow-link").all()}
    assert links[handle.id] == settings.workflow_url(handle.id)
    assert links[handle.id].startswith(settings.web_ui_url() + "/namespaces/default/workflows/")

    assert watch.problems == []


async def test_without_a_token_the_page_asks_for_one(served, browser):
    page = await browser.new_page()
    await page.goto(f"{served}/dashboard")
    await page.wait_for_function("document.body.dataset.state === 'needs-token'", timeout=30000)
    await page.fill("#token-input", TOKEN)
    await page.click("#token-form button")
    await page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30000)
    assert (await page.locator("#total-tokens").get_attribute("data-value")).isdigit()


async def test_the_api_docs_render_offline(served, browser):
    page = await browser.new_page()
    watch = PageWatch(page, served)
    await page.goto(f"{served}/api/v1/docs")
    await page.wait_for_selector(".opblock-summary-path", timeout=30000)
    paths = {await p.inner_text() for p in await page.locator(".opblock-summary-path").all()}
    assert {"/api/v1/plans", "/api/v1/deliverables", "/api/v1/dashboard"} <= {p.replace("\u200b", "") for p in paths}
    assert watch.problems == []
