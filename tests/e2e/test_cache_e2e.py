"""The cache hierarchy on the real parts: exact hits on revisions, patches for a few changed
facts, nothing stale ever served, no cross-tenant hits, single-flight, and degrading when the
cache is broken."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import asyncpg
import pytest

from contracts.models import PlanRequest
from domain.client import parse_client
from domain.sections import Level
from service.intake import accept_client
from storage import clients, documents
from tests.e2e.conftest import section_requests
from tests.e2e.test_business_plan_e2e import ESSENTIAL, new_client, run_plan, usage_rows
from workflows.business_plan import BusinessPlanWorkflow

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
    # Unchanged sections are the stored answers (keyed by what they read, not the client version).
    assert tiers(result) == {
        "executive_summary": "stored",
        "market_analysis": "stored",
        "competitive_landscape": "patch",
    }
    assert Counter(r["section"] for r in section_requests(stub)) == Counter({"section_patch": 1})
    assert result.document.version == 2


async def test_an_edit_long_after_the_cache_expired_still_reuses_and_patches(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    await pool.execute("DELETE FROM cache_entries WHERE client_id = $1", client_id)  # every entry expired
    await update_client(pool, client_id, emergingCompetitors="Reformer-at-home startups and a new app, Glide.")
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    assert tiers(result) == {
        "executive_summary": "stored",
        "market_analysis": "stored",
        "competitive_landscape": "patch",  # its base is the stored section, with the inputs it was written from
    }
    assert [r["section"] for r in section_requests(stub)] == ["section_patch"]


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


async def test_a_small_edit_is_patched_on_the_sections_own_model_and_writes_less(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    first, _ = await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    (written,) = await usage_rows(pool, first.id, "generate_section")
    current = await clients.get(pool, client_id)
    age = current.record.wire()["targetDemographicAge"]
    await update_client(pool, client_id, targetDemographicAge=age.replace("40", "45"))
    stub.reset()
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    assert tiers(result) == {"market_analysis": "patch"}
    (patch,) = await usage_rows(pool, handle.id, "patch_section")
    assert patch["model"] == settings.model_standard and patch["cache_tier"] == "patch" and not patch["cache_hit"]
    # Sized to the change: far less than the section, and the counterfactual is the whole section.
    assert 0 < patch["completion_tokens"] <= written["completion_tokens"] // 2
    assert patch["baseline_completion_tokens"] == written["completion_tokens"]
    (request,) = section_requests(stub)
    prompt = request["messages"][1]["content"]
    assert "CURRENT\n" in prompt and "45" in prompt and "CHANGED\n" in prompt
    doc = await documents.latest(pool, client_id, "business_plan")
    assert doc.version == 2


async def test_a_patch_that_fails_falls_back_to_a_full_rewrite(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    await update_client(pool, client_id, keyPainPoints="No time to train; classes are too expensive.")
    stub.reset()
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "section_patch"}}])
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["market_analysis"]))
    assert tiers(result) == {"market_analysis": "none"}
    assert [r["section"] for r in section_requests(stub)] == ["section_patch", "market_analysis"]
    (failed,) = await usage_rows(pool, handle.id, "patch_section")
    assert not failed["success"] and failed["completion_tokens"] > 0  # billed, counted against us


@pytest.mark.parametrize("field", ["industryNiche", "brandName"])
async def test_a_core_field_change_never_serves_a_stale_section(pool, client, settings, stub, worker, field):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    await update_client(pool, client_id, **{field: "Zero-waste pet food"})
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    # Every section's prompt carries the brand and niche: each is written again (patched or in full).
    assert set(tiers(result).values()) <= {"patch", "none"}, tiers(result)
    assert len(result.sections) == 8 and all(s.llm_calls > 0 for s in result.sections)


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


async def test_a_plan_has_only_its_catalogue_sections(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, sections=["team_structure"]))
    assert [r["section"] for r in stub.requests()] == ["team_structure"]
    doc = await documents.latest(pool, client_id, "business_plan")
    assert "Disclaimer" not in doc.markdown
