"""Batching on the real parts: small low-priority sections of a plan share one stub request."""

from __future__ import annotations

from collections import Counter

import pytest
from temporalio.testing import ActivityEnvironment

from activities.section_generation import SectionActivities
from contracts.models import PlanRequest, SectionGroupRequest, SectionRequest
from domain.catalogue.plan import resolve_sections
from domain.outputs.schemas import output_model
from domain.sections import Level
from service.wiring import close_dependencies, plan_dependencies
from storage import documents
from tests.e2e.conftest import make_settings, requested_sections, section_requests
from tests.e2e.test_business_plan_e2e import new_client, run_plan
from workflows.business_plan import BusinessPlanWorkflow

# Free-text fields of the application form (a long answer in each is plausible).
LONG_TEXT_FIELDS = (
    "professionalMilestones", "visionForVenture", "hopeToAchieve", "targetAudience", "demographicProfile",
    "currentChannels", "keyPainPoints", "brandValues", "differentiation", "uniqueValueProps",
    "emergingCompetitors", "idealBrandImage", "inspirationBrands", "brandingAesthetics", "emotionsBrandEvokes",
    "brandPersonality", "otherProductIdeas", "scalingGoals", "growthStrategies", "longTermVision",
    "specificDeadlines", "additionalInfo",
)  # fmt: skip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

COMPLETE = [s.key for s in resolve_sections(Level.COMPLETE)]
BATCH = ["operations_plan", "team_structure"]


async def ledger(pool, workflow_id: str):  # type: ignore[no-untyped-def]
    return await pool.fetch("SELECT * FROM usage_ledger WHERE workflow_id = $1 ORDER BY id", workflow_id)


async def test_a_complete_plan_writes_its_small_low_priority_sections_in_one_request(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))

    requests = section_requests(stub)
    batch = [r for r in requests if r["members"]]
    assert len(batch) == 1 and batch[0]["members"] == BATCH and batch[0]["status"] == 200
    assert Counter(r["section"] for r in requests) == Counter(
        {k: 1 for k in COMPLETE if k not in BATCH} | {"section_batch": 1}
    )
    # The answer is the members' catalogue targets (600 + 400) plus their keys, not shorter.
    assert 1000 <= batch[0]["completion_tokens"] <= 1012

    # The document is complete and shaped as without batching.
    assert [s.section_key for s in result.sections] == COMPLETE
    assert {s.section_key: s.batch_size for s in result.sections if s.batch_size} == dict.fromkeys(BATCH, 2)
    doc = await documents.latest(pool, client_id, "business_plan")
    assert doc is not None and "## Operations Plan" in doc.markdown and "## Team Structure" in doc.markdown
    as_json = await documents.as_json(pool, doc)
    assert [e["key"] for e in as_json["sections"]] == COMPLETE
    for entry in as_json["sections"]:
        output_model(entry["key"]).model_validate(entry["content"])

    # One usage row per member: shares of the one bill, each with its own naive counterfactual.
    rows = [r for r in await ledger(pool, handle.id) if r["operation"] == "generate_section_batch"]
    assert sorted(r["section_key"] for r in rows) == BATCH and all(r["success"] for r in rows)
    assert sum(r["prompt_tokens"] for r in rows) == batch[0]["prompt_tokens"]
    assert sum(r["completion_tokens"] for r in rows) == batch[0]["completion_tokens"]
    assert all(r["baseline_prompt_tokens"] > 0 and r["baseline_completion_tokens"] > 300 for r in rows)
    billed = sum(r["prompt_tokens"] + r["completion_tokens"] for r in requests)
    assert result.total_tokens == billed

    progress = await handle.query(BusinessPlanWorkflow.progress)
    assert progress.status == "completed" and [s.status for s in progress.sections] == ["done"] * 8
    assert progress.tokens == result.total_tokens

    # Stored and cached under each member's own keys: a repeat makes no call at all.
    stub.reset()
    _, again = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    assert section_requests(stub) == []
    assert {s.cache_tier for s in again.sections} == {"stored"}


async def test_a_batch_answered_with_invalid_json_falls_back_to_one_call_per_section(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "section_batch"}}])
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))

    assert [s.section_key for s in result.sections] == COMPLETE
    requests = section_requests(stub)
    assert [r["fault"] for r in requests if r["members"]] == ["invalid_json"]
    assert Counter(requested_sections(stub)) == Counter(COMPLETE + BATCH)
    # The fallback calls came after the failed batch, within the same activity.
    assert Counter(r["section"] for r in requests if r["status"] == 200 and not r["fault"])["operations_plan"] == 1
    rows = await ledger(pool, handle.id)
    failed = [r for r in rows if r["operation"] == "generate_section_batch"]
    assert sorted(r["section_key"] for r in failed) == BATCH and not any(r["success"] for r in failed)
    assert all("not JSON" in r["error_message"] for r in failed)
    own = [r for r in rows if r["operation"] == "generate_section" and r["section_key"] in BATCH]
    assert len(own) == 2 and all(r["success"] for r in own)
    assert {s.section_key: s.batch_size for s in result.sections if s.section_key in BATCH} == dict.fromkeys(BATCH, 0)


async def test_a_member_invalid_in_the_batch_is_written_alone_and_the_valid_one_is_not_paid_twice(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    # The stub spoils only team_structure's part of the batch answer.
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "team_structure"}}])
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))

    assert [s.section_key for s in result.sections] == COMPLETE
    requested = requested_sections(stub)
    assert requested.count("operations_plan") == 1 and requested.count("team_structure") == 2
    by_key = {s.section_key: s for s in result.sections}
    assert by_key["operations_plan"].batch_size == 2 and by_key["team_structure"].batch_size == 0


async def test_a_retried_batch_activity_after_success_makes_no_call(pool, client, settings, stub, worker, database_url):
    client_id = await new_client(pool)
    _, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    stub.reset()
    # The batch activity again, as Temporal would retry it after its members were stored.
    deps = await plan_dependencies(make_settings(), database_url, _llm(stub))
    try:
        request = SectionGroupRequest(
            members=[
                SectionRequest(
                    client_id=client_id, client_version=result.client_version, section_key=k, document_sections=COMPLETE
                )
                for k in BATCH
            ]
        )
        again = await ActivityEnvironment().run(SectionActivities(deps).generate_section_group, request)
    finally:
        await close_dependencies(deps)
    assert stub.requests() == []
    assert [s.cache_tier for s in again.sections] == ["stored", "stored"]
    assert [s.section_id for s in again.sections] == [s.section_id for s in result.sections if s.section_key in BATCH]


async def test_batching_switched_off_writes_each_section_on_its_own(pool, client, stub, temporal_env, database_url):
    from worker import build_worker

    settings = make_settings(disabled_techniques=["batching"])
    deps = await plan_dependencies(settings, database_url, _llm(stub))
    try:
        async with build_worker(temporal_env.client, settings, deps):
            client_id = await new_client(pool)
            await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    finally:
        await close_dependencies(deps)
    assert Counter(r["section"] for r in section_requests(stub)) == Counter(COMPLETE)


def _llm(stub):  # type: ignore[no-untyped-def]
    from service.wiring import LLMConfig
    from tests.e2e.conftest import STUB_KEY

    return LLMConfig(api_key=STUB_KEY, base_url=stub.base_url, model_override=None, free_models=frozenset())


async def test_a_section_over_budget_does_not_stop_prepare_from_deciding(
    pool, client, stub, temporal_env, database_url
):
    from temporalio.client import WorkflowFailureError

    from worker import build_worker

    # Without context compression every section reads the whole record: far over every budget.
    settings = make_settings(disabled_techniques=["context_compression"])
    client_id = await new_client(pool)
    deps = await plan_dependencies(settings, database_url, _llm(stub))
    try:
        from domain.client import parse_client
        from storage import clients

        record = (await clients.get(pool, client_id, None)).record.wire()
        record |= {f: f"Note {i}: " + "detail " * 200 for i, f in enumerate(LONG_TEXT_FIELDS)}
        await clients.upsert(pool, parse_client(record))
        async with build_worker(temporal_env.client, settings, deps):
            with pytest.raises(WorkflowFailureError) as info:
                await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    finally:
        await close_dependencies(deps)
    # Each section over budget fails in its own activity; prepare did not fail the plan, so the
    # sections that fit (the largest budgets) were still written, each on its own.
    cause = info.value.cause
    assert getattr(cause, "type", None) == "SectionsFailed" and "BudgetExceeded" in str(cause)
    failed = int(str(cause).split(" of 8 sections")[0].rsplit(" ", 1)[-1])
    written = [r["section"] for r in section_requests(stub)]
    assert 1 <= len(written) and failed + len(written) == 8
    assert "financial_projections" in written and all(not r["members"] for r in section_requests(stub))


async def test_after_an_edit_the_months_kpis_are_patched_and_unchanged_sections_reused(
    pool, client, settings, stub, worker
):
    from contracts.models import DeliverableRequest
    from domain.catalogue import deliverables
    from service import starts
    from tests.e2e.test_cache_e2e import update_client

    client_id = await new_client(pool)
    first = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1))
    await first.result()
    # Every KPI section reads scalingGoals; Templates/Tools do not.
    await update_client(pool, client_id, scalingGoals="GBP 3M revenue in year three; 25k members.")
    stub.reset()
    second = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1))
    result = await second.result()

    kpis = [f"{d.key}__kpis" for d in deliverables.documents(1)]
    # The old KPI entries cannot be exact hits (other inputs): each KPI section is written again,
    # patched or (its goals being most of what it reads) in full.
    tiers = {s.section_key: s.cache_tier for s in result.sections}
    assert {tiers[k] for k in kpis} <= {"patch", "none"}
    assert all(s.llm_calls > 0 for s in result.sections if s.section_key in kpis)
    assert {tiers[f"{d.key}__templates_tools"] for d in deliverables.documents(1)} == {"stored"}
