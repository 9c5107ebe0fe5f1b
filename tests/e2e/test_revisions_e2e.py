"""Differential regeneration, the diff it reports, progressive levels and `plan regenerate`."""

from __future__ import annotations

from collections import Counter

import pytest

from contracts.models import PlanRequest
from domain.sections import Level
from storage import documents
from tests.e2e.conftest import requested_sections, section_requests
from tests.e2e.test_business_plan_e2e import new_client, run_plan
from tests.e2e.test_cache_e2e import update_client
from wavelaunch import commands

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_an_update_changes_only_its_sections_and_says_why(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    _, first = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    assert {c.reason for c in first.document.changes} == {"new"}
    await update_client(pool, client_id, emergingCompetitors="Two new home-reformer apps.")
    _, second = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    assert [c.model_dump() for c in second.document.changes] == [
        {"section_key": "competitive_landscape", "reason": "inputs changed", "fields": ["emergingCompetitors"]}
    ]
    doc = await documents.latest(pool, client_id, "business_plan")
    assert doc.changes == [c.model_dump() for c in second.document.changes]


async def test_upgrading_a_level_generates_only_the_missing_sections(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    # Operations and Team share one batch call (tokenopt.batching); counted per section here.
    assert Counter(requested_sections(stub)) == Counter(
        ["product_services", "marketing_strategy", "financial_projections", "operations_plan", "team_structure"]
    )
    assert len(result.sections) == 8


async def test_regenerate_fields_writes_their_sections_afresh_and_refuses_unknown_fields(
    pool,
    client,
    settings,
    stub,
    worker,
    external,  # noqa: F811
):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.STANDARD))
    stub.reset()
    handle = await commands.regenerate_plan(external, client_id, ["brandValues"], None)
    result = await handle.result()
    assert result.level == Level.STANDARD  # the latest plan's level
    assert [r["section"] for r in section_requests(stub)] == ["product_services"]
    assert {s.section_key: s.cache_tier for s in result.sections}["product_services"] == "none"
    with pytest.raises(commands.UnknownFields, match="favouriteColour"):
        await commands.regenerate_plan(external, client_id, ["favouriteColour"], None)


async def test_an_update_during_a_running_plan_is_folded_in_not_started_twice(pool, client, settings, stub, worker):
    from service import starts
    from workflows.business_plan import BusinessPlanWorkflow

    client_id = await new_client(pool)
    stub.add_faults([{"kind": "delay", "seconds": 1.5, "times": 3}])
    # Pinned to version 1, as a plan that started before the edit would be.
    request = PlanRequest(client_id=client_id, level=Level.ESSENTIAL, client_version=1)
    first = await starts.start(client, settings, request, announce_version=1)
    await update_client(pool, client_id, emergingCompetitors="A rival launched last week.")
    second = await starts.start(client, settings, request, announce_version=2)
    assert second.id == first.id
    result = await first.result()
    assert result.client_version == 2
    # Round two wrote only the section whose input changed (a patch of it); one run, one document.
    assert Counter(r["section"] for r in section_requests(stub)) == Counter(
        ["executive_summary", "market_analysis", "competitive_landscape", "section_patch"]
    )
    assert result.document.version == 1
    assert (await first.query(BusinessPlanWorkflow.progress)).status == "completed"
