"""The cache hierarchy on the real parts: exact hits on revisions, no cross-tenant hits,
single-flight, the semantic tier and its guard, and degrading when the cache is broken."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import pytest

from domain.client import parse_client
from domain.sections import Level
from storage import clients, documents
from tests.e2e.conftest import section_requests
from tests.e2e.test_business_plan_e2e import ESSENTIAL, new_client, run_plan, usage_rows
from wavelaunch.intake import accept_client
from workflows.business_plan import BusinessPlanWorkflow
from workflows.models import PlanRequest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def update_client(pool: asyncpg.Pool, client_id: str, **changes: str) -> None:
    current = await clients.get(pool, client_id)
    await accept_client(pool, parse_client(current.record.wire() | changes))


def tiers(result) -> dict[str, str]:
    return {s.section_key: s.cache_tier for s in result.sections}


async def test_an_edit_regenerates_only_the_sections_that_read_the_field(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    await update_client(pool, client_id, emergingCompetitors="Reformer-at-home startups and a new app, Glide.")
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    assert tiers(result) == {
        "executive_summary": "exact",
        "market_analysis": "exact",
        "competitive_landscape": "none",
    }
    assert Counter(r["section"] for r in section_requests(stub)) == Counter({"competitive_landscape": 1})
    assert result.document.version == 2


async def test_identical_records_of_two_clients_never_share_an_entry(pool, client, settings, stub, worker):
    first = await new_client(pool)
    second = await new_client(pool)  # the same record, another id
    await run_plan(client, settings, PlanRequest(client_id=first, level=Level.ESSENTIAL))
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=second, level=Level.ESSENTIAL))
    assert set(tiers(result).values()) == {"none"}
    assert Counter(r["section"] for r in section_requests(stub)) == Counter(ESSENTIAL)


async def test_two_workflows_missing_the_same_key_make_one_call(pool, client, settings, stub, worker, temporal_env):
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "delay", "seconds": 1, "times": 10}])
    request = PlanRequest(client_id=client_id, sections=["market_analysis"])
    # Two workflows of the same client at once (another document kind, an API call...).
    handles = [
        await temporal_env.client.start_workflow(
            BusinessPlanWorkflow.run, request, id=f"twin-{uuid.uuid4()}", task_queue=settings.task_queue
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(h.result() for h in handles))
    assert [r["status"] for r in section_requests(stub)] == [200]
    assert sorted(r.sections[0].cache_tier for r in results) in (["exact", "none"], ["none", "stored"])


async def test_semantic_tier_revises_a_near_identical_section_with_the_cheap_model(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    current = await clients.get(pool, client_id)
    audience = current.record.wire()["targetAudience"]
    await update_client(pool, client_id, targetAudience=audience.replace("stay strong", "stay really strong"))
    stub.reset()
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    assert tiers(result) == {"market_analysis": "semantic"}
    revise = await usage_rows(pool, handle.id, "revise_section")
    assert len(revise) == 1 and revise[0]["model"] == settings.model_economy and revise[0]["cache_tier"] == "semantic"


async def test_semantic_guard_refuses_changed_numbers(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    current = await clients.get(pool, client_id)
    age = current.record.wire()["targetDemographicAge"]
    await update_client(pool, client_id, targetDemographicAge=age.replace("40", "45"))
    stub.reset()
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    assert tiers(result) == {"market_analysis": "none"}
    assert await usage_rows(pool, handle.id, "revise_section") == []


async def test_a_broken_cache_degrades_to_full_generation(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await pool.execute("ALTER TABLE cache_entries RENAME TO cache_entries_away")
    try:
        _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    finally:
        await pool.execute("ALTER TABLE cache_entries_away RENAME TO cache_entries")
    assert set(tiers(result).values()) == {"none"}
    assert result.document.version == 1


async def test_client_update_marks_only_the_affected_sections_entries_stale(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    await update_client(pool, client_id, emergingCompetitors="A new rival.")
    rows = await pool.fetch("SELECT section_key, stale FROM cache_entries WHERE client_id = $1", client_id)
    assert {r["section_key"]: r["stale"] for r in rows} == {
        "executive_summary": False,
        "market_analysis": False,
        "competitive_landscape": True,
    }


async def test_template_boilerplate_is_written_once_and_filled_per_client(pool, client, settings, stub, worker):
    await pool.execute("DELETE FROM cache_entries WHERE tier = 'template'")
    first, second = await new_client(pool), await new_client(pool)
    await update_client(pool, second, brandName="Second Brand Co")
    for client_id in (first, second):
        await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["team_structure"]))
    # One call wrote the disclaimer, for every client (the stub logs it under its schema name).
    assert [r["section"] for r in stub.requests()].count("disclaimer") == 1
    rows = await pool.fetch(
        "SELECT client_id, cache_tier, operation FROM usage_ledger WHERE section_key = 'disclaimer'"
        " AND client_id = ANY($1::text[]) ORDER BY id",
        [first, second],
    )
    assert [(r["client_id"], r["cache_tier"], r["operation"]) for r in rows] == [
        (first, "none", "generate_template"),
        (second, "template", "generate_section"),
    ]
    doc = await documents.latest(pool, second, "business_plan")
    assert "## Notes and Disclaimer" in doc.markdown and "{brand}" not in doc.markdown
