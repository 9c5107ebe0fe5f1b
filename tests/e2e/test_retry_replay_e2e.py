"""`wavelaunch retry` and `wavelaunch replay` against live workflows."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from domain.sections import Level
from tests.e2e.conftest import make_settings, section_requests
from tests.e2e.test_business_plan_e2e import new_client, run_plan
from wavelaunch import commands
from workflows.models import PlanRequest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def external(settings, temporal_env, database_url, tmp_path):
    """The same settings, pointed at the running parts the way an operator's shell would be."""
    return make_settings(
        task_queue=settings.task_queue,
        state_dir=tmp_path,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        DATABASE_URL=database_url,
    )


async def test_retry_generates_only_what_failed_and_refuses_a_success(pool, client, settings, stub, worker, external):
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "invalid_json", "times": 3, "match": {"section": "market_analysis"}}])
    with pytest.raises(WorkflowFailureError):
        await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    stub.reset()

    handle = await commands.retry_plan(external, f"plan-{client_id}")
    result = await handle.result()
    assert [r["section"] for r in section_requests(stub)] == ["market_analysis"]
    assert {s.section_key: s.cache_tier for s in result.sections} == {
        "executive_summary": "stored",
        "market_analysis": "none",
        "competitive_landscape": "stored",
    }
    with pytest.raises(commands.NothingToRetry, match="completed successfully"):
        await commands.retry_plan(external, f"plan-{client_id}")
    with pytest.raises(commands.NothingToRetry, match="no workflow"):
        await commands.retry_plan(external, "plan-nobody-at-all")
    assert await commands.replay(external, f"plan-{client_id}") is None
