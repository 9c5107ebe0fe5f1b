"""Bulk regeneration on the real parts: the dev server (real durable timers), embedded Postgres,
and the stub's Batch API (files, batches, output files) through the official `openai` client."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from contracts.models import BulkRequest, PlanRequest
from domain.budgets import BudgetScope, BudgetSpec, Period
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from service import starts
from service.wiring import close_dependencies, plan_dependencies
from storage import budgets, documents
from tests.e2e.conftest import finished, make_settings, section_requests
from tests.e2e.test_business_plan_e2e import new_client, run_plan
from tokenopt import pricing
from wavelaunch import commands
from worker import build_worker
from workflows.bulk import BulkRegenerationWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ESSENTIAL = [s.key for s in resolve_sections(Level.ESSENTIAL)]


async def run_bulk(client, settings, client_ids, **extra):
    request = BulkRequest(client_ids=client_ids, level=Level.ESSENTIAL, poll_seconds=1, **extra)
    handle = await starts.start(client, settings, request)
    return handle, await handle.result()


async def rows(pool, workflow_id, operation):
    return await pool.fetch(
        "SELECT * FROM usage_ledger WHERE workflow_id = $1 AND operation = $2 ORDER BY id", workflow_id, operation
    )


async def test_two_clients_one_batch_stored_at_batch_price_then_plans_cost_nothing(
    pool, client, settings, stub, worker
):
    ids = [await new_client(pool), await new_client(pool)]
    handle, result = await run_bulk(client, settings, ids)

    assert handle.id.startswith("bulk-")
    [batch] = stub.batches()
    assert batch["status"] == "completed" and batch["lines"] == 2 * len(ESSENTIAL)
    assert batch["polls"] >= 2  # validating -> in_progress -> completed, one durable timer per look
    assert result.mode == "batch" and result.batch_id == batch["id"]
    assert result.to_generate == result.stored_from_batch == 6 and result.fallback == 0
    # Not one direct section call: every section came from the batch, the plans reused them.
    assert section_requests(stub) == []
    assert set(result.documents) == set(ids)
    for client_id in ids:
        doc = await documents.latest(pool, client_id, "business_plan")
        assert doc is not None and "## Market Analysis" in doc.markdown

    batch_rows = await rows(pool, handle.id, "batch_section")
    assert len(batch_rows) == 6 and all(r["success"] for r in batch_rows)
    assert sorted(r["section_key"] for r in batch_rows) == sorted(ESSENTIAL * 2)
    for r in batch_rows:
        # genai-prices' batch rate for the model; for these models it is half the standard price.
        standard = pricing.cost(r["model"], prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"])
        assert r["cached_prompt_tokens"] == 0
        assert r["estimated_cost"] == round(standard / 2, 8) > 0
        assert r["baseline_cost"] > r["estimated_cost"] and r["baseline_prompt_tokens"] > 0
    assert sum(r["estimated_cost"] for r in batch_rows) == pytest.approx(result.batch_cost, abs=Decimal("1e-7"))

    # The plans the bulk ran reused the sections without claiming their naive cost a second time.
    plan_rows = await pool.fetch(
        "SELECT * FROM usage_ledger WHERE workflow_id = ANY($1::text[]) AND cache_tier = 'stored'",
        [f"plan-{c}" for c in ids],
    )
    assert len(plan_rows) == 6 and all(r["baseline_cost"] == 0 for r in plan_rows)

    # A plan for those clients afterwards: zero LLM calls, every section from the stored tier.
    stub.reset()
    for client_id in ids:
        plan_handle, plan = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
        assert {s.cache_tier for s in plan.sections} == {"stored"} and plan.total_cost == 0
    assert stub.requests() == [] and stub.batches() == []

    # The same bulk request again: nothing left to write, so no batch and no call.
    _, again = await run_bulk(client, settings, ids)
    assert again.to_generate == 0 and again.reused == 6 and again.batch_id is None
    assert stub.requests() == [] and stub.batches() == []


@pytest.mark.parametrize(
    ("fault", "direct"),
    [
        ({"kind": "line_error", "match": {"section": "market_analysis"}}, ["market_analysis"]),
        ({"kind": "line_invalid_json", "match": {"section": "market_analysis"}}, ["market_analysis"]),
        ({"kind": "expire"}, ESSENTIAL),
        ({"kind": "fail"}, ESSENTIAL),
    ],
    ids=["line-error", "line-invalid", "batch-expired", "batch-failed"],
)
async def test_what_the_batch_did_not_answer_goes_the_direct_way(pool, client, settings, stub, worker, fault, direct):
    client_id = await new_client(pool)
    stub.add_batch_faults([fault])
    handle, result = await run_bulk(client, settings, [client_id])

    assert len(stub.batches()) == 1
    assert result.fallback == len(direct) and result.stored_from_batch == len(ESSENTIAL) - len(direct)
    assert sorted(r["section"] for r in section_requests(stub)) == sorted(direct)
    assert all(r["status"] == 200 for r in section_requests(stub))
    assert set(result.documents) == {client_id}
    batch_rows = await rows(pool, handle.id, "batch_section")
    assert sum(r["success"] for r in batch_rows) == len(ESSENTIAL) - len(direct)
    direct_rows = await rows(pool, handle.id, "generate_section")
    assert sorted(r["section_key"] for r in direct_rows if r["success"]) == sorted(direct)
    if fault["kind"].startswith("line"):
        [failed] = [r for r in batch_rows if not r["success"]]
        assert failed["section_key"] == "market_analysis" and failed["error_message"]
    if fault["kind"] == "line_invalid_json":
        # The batch line asked exactly what the direct call asked: the same prompt, token for token.
        [direct_row] = [r for r in direct_rows if r["success"]]
        assert failed["prompt_tokens"] == direct_row["prompt_tokens"] > 0


async def test_with_the_batch_api_off_every_section_is_a_direct_call(pool, client, database_url, llm_config, stub):
    settings = make_settings(batch_api=False)
    deps = await plan_dependencies(settings, database_url, llm_config)
    try:
        async with build_worker(client, settings, deps):
            ids = [await new_client(pool), await new_client(pool)]
            handle, result = await run_bulk(client, settings, ids)
    finally:
        await close_dependencies(deps)
    assert result.mode == "direct" and result.batch_id is None and stub.batches() == []
    assert sorted(r["section"] for r in section_requests(stub)) == sorted(ESSENTIAL * 2)
    assert result.fallback == 6 and set(result.documents) == set(ids)
    assert await rows(pool, handle.id, "batch_section") == []


async def test_unknown_clients_are_refused_before_anything_starts(pool, client, settings, stub, worker):
    known = await new_client(pool)
    with pytest.raises(starts.UnknownClients, match="nobody-1, nobody-2"):
        await starts.check_bulk(pool, BulkRequest(client_ids=[known, "nobody-2", "nobody-1"]))
    # The workflow refuses them too (a caller that skipped the check), without a call.
    with pytest.raises(WorkflowFailureError) as info:
        await run_bulk(client, settings, [known, "nobody-3"])
    assert "nobody-3" in str(info.value.cause.cause)
    assert stub.requests() == [] and stub.batches() == []


async def test_cancelling_a_waiting_bulk_cancels_its_batch(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    stub.state.batches.configure(polls=10_000)  # the batch never finishes on its own
    try:
        handle = await starts.start(
            client, settings, BulkRequest(client_ids=[client_id], level=Level.ESSENTIAL, poll_seconds=1)
        )
        for _ in range(100):
            batches = stub.batches()
            if batches and batches[0]["polls"] >= 2:
                break
            await asyncio.sleep(0.1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    finally:
        stub.state.batches.configure(polls=2)
    [batch] = stub.batches()
    assert batch["status"] == "cancelling"
    assert section_requests(stub) == []
    assert await rows(pool, handle.id, "batch_section") == []


async def test_a_batch_holds_its_estimate_against_the_budgets_and_settles_what_it_billed(
    pool, client, settings, stub, worker
):
    ids = [await new_client(pool), await new_client(pool)]
    roomy = BudgetSpec(scope=BudgetScope.CLIENT, client_id=ids[0], period=Period.DAILY, token_limit=1_000_000)
    await budgets.set_budget(pool, roomy)
    try:
        handle, result = await run_bulk(client, settings, ids)
        [(ref, reservation_id)] = await pool.fetch(
            "SELECT h.ref, h.reservation_id FROM bulk_budget_holds h JOIN bulk_requests b ON b.ref = h.ref"
            " WHERE b.workflow_id = $1",
            handle.id,
        )
        held = await pool.fetchrow("SELECT * FROM budget_reservations WHERE id = $1", reservation_id)
        billed = await pool.fetchrow(
            "SELECT sum(prompt_tokens + completion_tokens) AS tokens, sum(estimated_cost) AS cost FROM usage_ledger"
            " WHERE workflow_id = $1 AND operation = 'batch_section' AND client_id = $2",
            handle.id,
            ids[0],
        )
        # Held for the batch's lifetime (not a direct call's 20 minutes), at least what it billed,
        # then settled with exactly the client's billed lines.
        assert held["hold_until"] > held["created_at"] + timedelta(hours=24)
        assert held["state"] == "settled" and held["tokens"] >= billed["tokens"] > 0
        assert held["tokens_actual"] == billed["tokens"] and held["cost_actual"] == billed["cost"]
        [use] = [u for u in await budgets.usage(pool) if u.client_id == ids[0]]
        assert use.tokens_reserved == 0 and use.tokens_used == billed["tokens"]
    finally:
        await budgets.remove(pool, BudgetScope.CLIENT, ids[0], None)


async def test_a_batch_over_budget_is_refused_before_anything_is_submitted(pool, client, settings, stub, worker):
    ids = [await new_client(pool)]
    tight = BudgetSpec(scope=BudgetScope.CLIENT, client_id=ids[0], period=Period.DAILY, token_limit=100)
    await budgets.set_budget(pool, tight)
    try:
        with pytest.raises(WorkflowFailureError) as failed:
            await run_bulk(client, settings, ids)
        assert "budget" in str(failed.value.cause.cause).lower()
        assert stub.batches() == [] and section_requests(stub) == []
        [use] = [u for u in await budgets.usage(pool) if u.client_id == ids[0]]
        assert use.tokens_reserved == 0 and use.tokens_used == 0  # nothing left held
    finally:
        await budgets.remove(pool, BudgetScope.CLIENT, ids[0], None)


async def test_a_batch_refused_by_a_paused_budget_waits_and_resume_submits_it(
    pool, client, settings, stub, worker, external
):
    ids = [await new_client(pool)]
    paused = BudgetSpec(
        scope=BudgetScope.CLIENT, client_id=ids[0], period=Period.DAILY, token_limit=100, auto_pause=True
    )
    await budgets.set_budget(pool, paused)
    try:
        request = BulkRequest(client_ids=ids, level=Level.ESSENTIAL, poll_seconds=1)
        handle = await starts.start(client, settings, request)
        while (progress := await handle.query(BulkRegenerationWorkflow.progress)).status != "paused":
            assert progress.status in ("starting", "preparing", "submitting"), progress
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING, "it should wait, not fail"
            await asyncio.sleep(0.2)
        # Waiting, not retrying: nothing submitted, nothing held, the budget paused.
        assert stub.batches() == []
        [use] = [u for u in await budgets.usage(pool) if u.client_id == ids[0]]
        assert use.paused and use.tokens_reserved == 0

        await commands.budget_set(external, paused.model_copy(update={"token_limit": 1_000_000}))
        signalled: list[str] = []
        while handle.id not in signalled:  # the paused status may take a moment to be searchable
            _, signalled = await commands.budget_resume(external, BudgetScope.CLIENT, ids[0], None)
        result = await finished(handle)
        assert result.stored_from_batch == len(ESSENTIAL) and len(stub.batches()) == 1
        assert (await handle.query(BulkRegenerationWorkflow.progress)).status == "completed"
    finally:
        await budgets.remove(pool, BudgetScope.CLIENT, ids[0], None)
