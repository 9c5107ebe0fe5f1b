"""`wavelaunch retry` and `wavelaunch replay` against live workflows."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from contracts.models import DeliverableRequest, PlanRequest
from domain.sections import Level
from service import starts
from tests.e2e.conftest import section_requests
from tests.e2e.test_business_plan_e2e import new_client, run_plan
from wavelaunch import commands

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_retry_generates_only_what_failed_and_refuses_a_success(pool, client, settings, stub, worker, external):
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "invalid_json", "times": 3, "match": {"section": "market_analysis"}}])
    with pytest.raises(WorkflowFailureError):
        await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    stub.reset()

    handle = await commands.retry_workflow(external, f"plan-{client_id}")
    result = await handle.result()
    assert [r["section"] for r in section_requests(stub)] == ["market_analysis"]
    assert {s.section_key: s.cache_tier for s in result.sections} == {
        "executive_summary": "stored",
        "market_analysis": "none",
        "competitive_landscape": "stored",
    }
    with pytest.raises(starts.NothingToRetry, match="completed successfully"):
        await commands.retry_workflow(external, f"plan-{client_id}")
    with pytest.raises(starts.NothingToRetry, match="no workflow"):
        await commands.retry_workflow(external, "plan-nobody-at-all")
    assert await commands.replay(external, f"plan-{client_id}") is None


async def test_retry_of_a_failed_month_generates_only_the_failed_sections(
    pool, client, settings, stub, worker, external
):
    client_id = await new_client(pool)
    # Brand Context is written once per month: its three broken answers fail the month.
    stub.add_faults([{"kind": "invalid_json", "times": 3, "match": {"section": "brand_context"}}])
    month = DeliverableRequest(client_id=client_id, month=1)
    with pytest.raises(WorkflowFailureError):
        await (await starts.start(client, settings, month)).result()
    stub.reset()
    # Every answer for the five SOP sections (not batched) is broken (5 x 3): they fail, the rest finish.
    stub.add_faults([{"kind": "invalid_json", "times": 15, "match": {"section": "sops_workflows"}}])
    handle = await commands.retry_workflow(external, f"deliverable-{client_id}-m1")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    finished = await pool.fetchval(
        "SELECT count(*) FROM usage_ledger WHERE client_id = $1 AND success AND cache_tier = 'none'", client_id
    )
    stub.reset()
    result = await (await commands.retry_workflow(external, f"deliverable-{client_id}-m1")).result()
    # Only what never finished is written: the five SOP sections; the other 21 are stored.
    assert finished == 21
    assert [r["section"] for r in section_requests(stub)] == ["sops_workflows"] * 5
    assert sum(1 for s in result.sections if s.cache_tier == "stored") == 21
