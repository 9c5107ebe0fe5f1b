"""Budgets on the real parts: a plan against a tiny budget pauses without calling the model and
continues after `budget resume`; with `fail` it fails with the budget error; thresholds crossed
are POSTed, signed, to a local HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from contracts.models import PlanRequest, SectionStatus
from domain import signature
from domain.budgets import BudgetScope, BudgetSpec, Period
from domain.sections import Level
from service import starts
from service.wiring import close_dependencies, plan_dependencies
from storage import alerts, budgets
from tests.e2e.conftest import make_settings, section_requests
from tests.e2e.test_business_plan_e2e import new_client
from wavelaunch import commands
from worker import build_worker
from workflows.business_plan import BusinessPlanWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SECRET = "alert-secret"


@contextlib.asynccontextmanager
async def running_worker(client: Client, database_url: str, llm_config, **overrides: object) -> AsyncIterator[str]:
    """A worker with these settings on its own task queue (yielded); alerts are delivered by exit."""
    settings = make_settings(**overrides)
    deps = await plan_dependencies(settings, database_url, llm_config)
    try:
        async with build_worker(client, settings, deps):
            yield settings.task_queue
    finally:
        await close_dependencies(deps)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local HTTP endpoint recording every POST (headers, raw body)."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def client_budget(client_id: str, **fields: object) -> BudgetSpec:
    return BudgetSpec(scope=BudgetScope.CLIENT, client_id=client_id, period=Period.DAILY, **fields)


async def start(client: Client, queue: str, client_id: str) -> WorkflowHandle:
    settings = make_settings(task_queue=queue)
    return await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))


async def until_paused(handle: WorkflowHandle) -> None:
    while True:
        progress = await handle.query(BusinessPlanWorkflow.progress)
        waiting = progress is not None and all(s.status == SectionStatus.PAUSED for s in progress.sections)
        if progress is not None and progress.status == "paused" and waiting:
            return
        await asyncio.sleep(0.2)


async def section_attempts(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "generate_section"
    )


async def test_a_paused_budget_makes_the_plan_wait_and_resume_completes_it(
    pool, client, stub, database_url, llm_config, external
):
    client_id = await new_client(pool)
    await budgets.set_budget(pool, client_budget(client_id, token_limit=100, auto_pause=True))
    async with running_worker(client, database_url, llm_config) as queue:
        handle = await start(client, queue, client_id)
        await until_paused(handle)
        [use] = [u for u in await budgets.usage(pool) if u.client_id == client_id]
        assert use.paused and use.tokens_reserved == 0
        # Waiting is durable, not a loop: one attempt per section, and the model was never called.
        attempts = await section_attempts(handle)
        assert attempts == 3
        assert section_requests(stub) == []
        progress = await handle.query(BusinessPlanWorkflow.progress)
        assert all("budget paused" in (s.error or "") for s in progress.sections)

        await commands.budget_set(external, client_budget(client_id, token_limit=1_000_000))
        signalled: list[str] = []
        while handle.id not in signalled:  # the paused status may take a moment to be searchable
            _, signalled = await commands.budget_resume(external, BudgetScope.CLIENT, client_id, None)
        result = await handle.result()
        assert (await handle.query(BusinessPlanWorkflow.progress)).status == "completed"

    assert len(result.sections) == 3 and {s.cache_tier for s in result.sections} == {"none"}
    assert await section_attempts(handle) == attempts + 3  # each section once more
    [use] = [u for u in await budgets.usage(pool) if u.client_id == client_id]
    billed = await pool.fetchrow(
        "SELECT sum(total_tokens) AS tokens, sum(estimated_cost) AS cost FROM usage_ledger WHERE client_id = $1",
        client_id,
    )
    # The budget counts exactly what the ledger billed, and holds nothing back any more.
    assert (use.tokens_used, use.cost_used, use.tokens_reserved, use.paused) == (
        billed["tokens"],
        billed["cost"],
        0,
        False,
    )


@pytest.mark.parametrize(
    ("auto_pause", "kind", "message"),
    [(True, "BudgetPaused", "reached its limit and is now paused"), (False, "BudgetExceeded", "would go over")],
)
async def test_with_fail_the_plan_fails_with_the_budget_error(
    pool, client, stub, database_url, llm_config, auto_pause, kind, message
):
    client_id = await new_client(pool)
    await budgets.set_budget(pool, client_budget(client_id, token_limit=100, auto_pause=auto_pause))
    async with running_worker(client, database_url, llm_config, budget_on_pause="fail") as queue:
        handle = await start(client, queue, client_id)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert (await handle.query(BusinessPlanWorkflow.progress)).status == "failed"
    text = str(failure.value.cause)
    assert "3 of 3 sections of the plan failed" in text and message in text
    assert f"client {client_id} budget" in text and "of 100 tokens" in text
    history = await handle.fetch_history()
    failures = [
        e.activity_task_failed_event_attributes.failure.application_failure_info.type
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert failures == [kind] * 3  # non-retryable: one attempt each
    assert section_requests(stub) == []


async def test_a_threshold_crossed_is_recorded_and_posted_signed(
    pool, client, stub, database_url, llm_config, receiver
):
    url, received = receiver
    client_id = await new_client(pool)
    use = await budgets.set_budget(pool, client_budget(client_id, token_limit=20_000, thresholds=[5, 10, 100]))
    async with running_worker(
        client, database_url, llm_config, alert_webhook_url=url, alert_webhook_secret=SECRET
    ) as queue:
        handle = await start(client, queue, client_id)
        await handle.result()
    # Delivered by the time the worker has shut down (its pending deliveries are awaited).
    raised = [a for a in await alerts.recent(pool) if a.budget_id == use.budget_id]
    assert sorted(a.threshold for a in raised) == [5, 10]
    assert all(a.delivered and a.delivery_error is None for a in raised)
    posted = [(h, b) for h, b in received if json.loads(b)["data"]["budget_id"] == use.budget_id]
    assert len(posted) == 2
    for headers, body in posted:
        assert signature.valid(body, headers["x-webhook-signature"], SECRET)
        assert headers["x-webhook-event"] == "alert.budget_threshold"
        assert headers["x-webhook-id"].startswith("alert_") and headers["x-webhook-timestamp"]
        data = json.loads(body)["data"]
        assert f"client {client_id} budget" in data["message"] and data["threshold"] in (5, 10)
    [now] = [u for u in await budgets.usage(pool) if u.budget_id == use.budget_id]
    assert Decimal(0) < now.cost_used and 0.1 <= now.fraction < 1
