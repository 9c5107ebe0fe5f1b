"""A business plan on the real parts: dev server, embedded Postgres, the HTTP stub via `openai`."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from contracts.models import PlanRequest
from domain.catalogue.plan import resolve_sections
from domain.client import parse_client
from domain.outputs.schemas import output_model
from domain.sections import Level, UnknownSection
from service import starts
from service.settings import Settings
from storage import clients, documents, usage
from storage.clients import UnknownClient
from stubs.llm_server import StubServer
from tests.e2e.conftest import section_requests
from wavelaunch.commands import sample_client_file
from workflows.business_plan import BusinessPlanWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ESSENTIAL = [s.key for s in resolve_sections(Level.ESSENTIAL)]


async def new_client(pool: asyncpg.Pool) -> str:
    data = json.loads(sample_client_file().read_text())
    data["id"] = f"e2e{uuid.uuid4().hex[:12]}"
    await clients.upsert(pool, parse_client(data))
    return data["id"]


async def run_plan(client: Client, settings: Settings, request: PlanRequest):
    handle = await starts.start(client, settings, request)
    return handle, await handle.result()


def successes(stub: StubServer) -> Counter[str]:
    return Counter(r["section"] for r in section_requests(stub) if r["status"] == 200)


async def usage_rows(pool: asyncpg.Pool, workflow_id: str, operation: str = "generate_section") -> list[asyncpg.Record]:
    # Not the template tier's rows: whether the template was written in this test or served from
    # the cache depends on which test ran first.
    return await pool.fetch(
        "SELECT * FROM usage_ledger WHERE workflow_id = $1 AND operation = $2"
        " AND cache_tier IS DISTINCT FROM 'template' ORDER BY id",
        workflow_id,
        operation,
    )


async def test_plan_generates_each_section_once_stores_document_and_usage(pool, client, settings, stub, worker):
    # This plan writes the template sections itself, whichever plans of the session ran before
    # (served from the template tier they would add a row of their own to the counts below).
    await pool.execute("DELETE FROM cache_entries WHERE tier = 'template'")
    client_id = await new_client(pool)
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))

    assert handle.id == f"plan-{client_id}"
    assert sorted(s.section_key for s in result.sections) == sorted(ESSENTIAL)
    assert successes(stub) == Counter(ESSENTIAL)

    doc = await documents.latest(pool, client_id, "business_plan")
    assert doc is not None and doc.version == result.document.version == 1
    assert "## Executive Summary" in doc.markdown and "## Market Analysis" in doc.markdown
    # Headings follow the schema's order, not the order Postgres stores JSON keys in.
    md = doc.markdown
    assert (
        md.index("### Headline") < md.index("### Overview") < md.index("### Mission") < md.index("### Key objectives")
    )
    as_json = await documents.as_json(pool, doc)
    for entry in as_json["sections"]:
        output_model(entry["key"]).model_validate(entry["content"])

    # Template sections (client-independent) may be served from an earlier test's generation.
    every_section_row = await usage_rows(pool, handle.id)
    rows = [r for r in every_section_row if r["cache_tier"] != "template"]
    assert len(rows) == len(ESSENTIAL) and all(r["success"] for r in rows)
    # The ledger holds the API's own usage, exactly as the stub billed it.
    billed = sum(r["prompt_tokens"] + r["completion_tokens"] for r in section_requests(stub))
    assert sum(r["total_tokens"] for r in rows) == billed == result.total_tokens
    assert all(r["baseline_prompt_tokens"] > 0 and r["estimated_cost"] > 0 for r in rows)
    # Routing: the executive summary goes to the premium model, the rest to cheaper ones.
    models = {r["section_key"]: r["model"] for r in rows}
    assert models["executive_summary"] == settings.model_premium
    assert models["market_analysis"] == settings.model_standard

    # The usage report adds up the same ledger, per model and operation too.
    report = await usage.report(pool, workflow_id=handle.id, run_id=handle.result_run_id)
    every_row = await pool.fetch("SELECT * FROM usage_ledger WHERE run_id = $1", handle.result_run_id)
    assert report["totals"]["total_tokens"] == sum(r["total_tokens"] for r in every_row) >= result.total_tokens
    assert set(report["by_model"]) == {r["model"] for r in every_row}
    assert report["by_operation"]["generate_section"]["calls"] == len(every_section_row)
    assert report["totals"]["saved_cost"] == pytest.approx(
        float(sum(r["baseline_cost"] - r["estimated_cost"] for r in every_row)), abs=1e-9
    )

    progress = await handle.query(BusinessPlanWorkflow.progress)
    assert progress.status == "completed" and progress.tokens == result.total_tokens
    # The client's email never reaches the model.
    assert "example.com" not in json.dumps(stub.state.requests())


async def test_repeated_plan_reuses_finished_sections_without_llm_calls(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    stub.reset()
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    assert section_requests(stub) == []
    assert {s.cache_tier for s in result.sections} == {"stored"}
    assert result.total_tokens == 0 and result.document.version == 2


async def test_unknown_client_or_section_is_refused_before_any_llm_call(pool, client, settings, stub, worker):
    with pytest.raises(UnknownClient, match="not found"):
        await starts.check_request(pool, PlanRequest(client_id="nobody"))
    client_id = await new_client(pool)
    with pytest.raises(UnknownSection, match="unknown section 'pricing'"):
        await starts.check_request(pool, PlanRequest(client_id=client_id, sections=["pricing"]))
    # Started anyway (e.g. by another client of the API), the workflow fails in its first step.
    with pytest.raises(WorkflowFailureError) as info:
        await run_plan(client, settings, PlanRequest(client_id="nobody"))
    assert "UnknownClient" in repr(info.value.cause.cause) or "not found" in str(info.value.cause)
    assert section_requests(stub) == []


async def test_rejected_api_key_fails_fast_with_an_actionable_message(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "status", "status": 401, "times": 100}])
    with pytest.raises(WorkflowFailureError) as info:
        await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "SectionsFailed"
    assert "OPENAI_API_KEY rejected" in str(cause)
    # Not retried: one request per section.
    assert Counter(r["section"] for r in section_requests(stub)) == Counter(ESSENTIAL)


async def test_rate_limits_are_retried_honouring_retry_after(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    stub.add_faults(
        [
            {
                "kind": "status",
                "status": 429,
                "retry_after": 1,
                "times": 2,
                "match": {"section": "market_analysis"},
            }
        ]
    )
    handle, result = await run_plan(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
    statuses = [r["status"] for r in section_requests(stub) if r["section"] == "market_analysis"]
    assert statuses == [429, 429, 200]
    assert successes(stub) == Counter(ESSENTIAL)
    rows = await usage_rows(pool, handle.id)
    failed = [r for r in rows if not r["success"]]
    assert len(failed) == 2 and all("429" in r["error_message"] for r in failed)
    assert [r["attempt"] for r in rows if r["section_key"] == "market_analysis"] == [1, 2, 3]


async def test_invalid_json_escalates_then_fails_the_section_and_a_rerun_pays_only_for_it(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    # One bad answer from the economy model: escalated once to the standard tier, then fine.
    stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": "team_structure"}}])
    _, result = await run_plan(
        client,
        settings,
        PlanRequest(client_id=client_id, sections=["team_structure", "executive_summary"]),
    )
    team = next(s for s in result.sections if s.section_key == "team_structure")
    assert team.escalated and team.llm_calls == 2 and team.model == settings.model_standard

    other = await new_client(pool)
    stub.reset()
    stub.add_faults([{"kind": "invalid_json", "times": 3, "match": {"section": "market_analysis"}}])
    with pytest.raises(WorkflowFailureError) as info:
        await run_plan(client, settings, PlanRequest(client_id=other, level=Level.ESSENTIAL))
    assert "InvalidModelOutput" in str(info.value.cause) or "invalid JSON 3 times" in str(info.value.cause)
    assert Counter(r["section"] for r in section_requests(stub))["market_analysis"] == 3

    # A new run generates only the failed section; the finished ones are reused from storage.
    stub.reset()
    _, result = await run_plan(client, settings, PlanRequest(client_id=other, level=Level.ESSENTIAL))
    assert [r["section"] for r in section_requests(stub)] == ["market_analysis"]
    assert {s.section_key for s in result.sections if s.cache_tier == "stored"} == {
        "executive_summary",
        "competitive_landscape",
    }
