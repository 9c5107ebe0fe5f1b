"""Monthly deliverables on the real parts: dev server, embedded Postgres, the HTTP stub via `openai`."""

from __future__ import annotations

from collections import Counter

import pytest

from contracts.models import DeliverableRequest
from domain.catalogue import deliverables
from domain.client import parse_client
from domain.outputs.schemas import output_model
from llm.client import LLMClient
from service import starts
from service.intake import accept_client
from storage import clients, documents
from tests.e2e.conftest import requested_sections, section_requests
from tests.e2e.test_business_plan_e2e import new_client
from tokenopt.reads import month_sections_reading
from wavelaunch.commands import InvalidMonth, UnknownFields, check_month, regenerate_deliverable
from workflows.deliverable import DeliverableWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

KINDS = [k.key for k in deliverables.section_kinds()]
DIGEST_KINDS = {k.key for k in deliverables.section_kinds() if k.uses_digest}


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[dict[str, str]]]]:
    """The messages of every LLM call the in-process worker makes, by schema name."""
    seen: dict[str, list[list[dict[str, str]]]] = {}
    original = LLMClient.complete_json

    async def recording(self, **kwargs):  # type: ignore[no-untyped-def]
        seen.setdefault(kwargs["schema_name"], []).append(kwargs["messages"])
        return await original(self, **kwargs)

    monkeypatch.setattr(LLMClient, "complete_json", recording)
    return seen


def calls(stub) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(r["section"] for r in section_requests(stub) if r["status"] == 200)


async def run_month(client, settings, client_id: str, month: int):  # type: ignore[no-untyped-def]
    handle = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=month))
    return handle, await handle.result()


async def test_months_one_and_two_share_brand_context_and_build_on_a_digest(
    pool, client, settings, stub, worker, prompts
):
    client_id = await new_client(pool)

    # Month 1: 26 sections (Brand Context once, 5 x 5 others), five documents stored. The two
    # boilerplate kinds (Templates/Tools, KPIs: economy, no digest in M1) share two batch calls.
    handle, result = await run_month(client, settings, client_id, 1)
    assert handle.id == f"deliverable-{client_id}-m1"
    assert len(result.sections) == 26 and len(result.documents) == 5
    made = calls(stub)
    assert sum(made.values()) == 18
    # The stub names a request by its schema, and a section kind has one schema name.
    assert made == Counter(
        {"brand_context": 1, "exec_summary": 5, "framework_strategy": 5, "sops_workflows": 5, "section_batch": 2}
    )
    # A single request is named by its kind, a batch member by its section key.
    kinds = [k if k in KINDS else deliverables.kind_of(k) for k in requested_sections(stub)]
    assert Counter(kinds) == Counter({"brand_context": 1, **{k: 5 for k in KINDS if k != "brand_context"}})
    assert {s.section_key for s in result.sections if s.batch_size} == {
        s.key for s in deliverables.month_sections(1) if deliverables.kind_of(s.key) in ("templates_tools", "kpis")
    }
    for doc in deliverables.documents(1):
        stored = await documents.latest(pool, client_id, "deliverable", document_key=doc.key)
        assert stored is not None and stored.version == 1 and stored.level == "m1"
        assert f"# {doc.title}" in stored.markdown and "## Brand Context" in stored.markdown
        as_json = await documents.as_json(pool, stored)
        assert [s["key"] for s in as_json["sections"]] == [s.key for s in deliverables.document_sections(doc.key)]
        for entry in as_json["sections"]:
            output_model(entry["key"]).model_validate(entry["content"])
    progress = await handle.query(DeliverableWorkflow.progress)
    assert progress.status == "completed" and progress.tokens == result.total_tokens
    # No month before M1: no digest in any prompt.
    assert not any("EARLIER MONTHS" in m[1]["content"] for ms in prompts.values() for m in ms)
    # Business plans are untouched by deliverable documents.
    assert await documents.latest(pool, client_id, "business_plan") is None

    # Month 2: Brand Context is reused (no call), the other 25 sections are written with the
    # digest of month 1 in the prompts of the kinds that build on earlier months. Templates/Tools
    # and KPIs are batched by kind now (only KPIs read the digest): 15 + 2 calls.
    stub.reset()
    prompts.clear()
    handle, result = await run_month(client, settings, client_id, 2)
    assert sum(calls(stub).values()) == 17
    assert "brand_context_v1" not in prompts
    by_key = {s.section_key: s for s in result.sections}
    assert by_key["brand_context"].cache_tier == "stored" and by_key["brand_context"].llm_calls == 0
    digest_row = await pool.fetchrow(
        "SELECT text FROM deliverable_digests WHERE client_id = $1 AND month = 2", client_id
    )
    assert digest_row is not None and digest_row["text"].startswith("EARLIER MONTHS (before M2)")
    assert "M1 Foundation Excellence" in digest_row["text"] and "- Brand Architecture:" in digest_row["text"]
    framework = prompts["framework_strategy_v1"]
    assert len(framework) == 5 and all(digest_row["text"] in m[1]["content"] for m in framework)
    batches = {r["members"][0].rpartition("__")[2]: r for r in section_requests(stub) if r["members"]}
    assert sorted(batches) == ["kpis", "templates_tools"]
    assert all(len(r["members"]) == 5 for r in batches.values())
    (kpis, templates) = sorted(
        prompts["section_batch_v1"], key=lambda m: "KEY m2_product_development_playbook__kpis" not in m[1]["content"]
    )
    # The digest once in the KPI batch, not at all in the Templates/Tools batch.
    assert kpis[1]["content"].count(digest_row["text"]) == 1
    assert "EARLIER MONTHS" not in templates[1]["content"]
    for kind in set(KINDS) - DIGEST_KINDS - {"brand_context", "templates_tools"}:
        assert not any("EARLIER MONTHS" in m[1]["content"] for m in prompts[f"{kind}_v1"])
    assert all("deliverable section" in m[0]["content"] for ms in prompts.values() for m in ms)
    month_two = [
        await documents.latest(pool, client_id, "deliverable", document_key=d.key) for d in deliverables.documents(2)
    ]
    assert all(d is not None and d.version == 1 for d in month_two)
    # Month 1's documents are still version 1: versions count per document.
    first = await documents.latest(pool, client_id, "deliverable", document_key="m1_brand_architecture")
    assert first is not None and first.version == 1


async def test_month_outside_1_to_8_is_refused_and_nothing_changes(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    for bad in (0, 9):
        with pytest.raises(InvalidMonth, match="1–8"):
            check_month(bad)
        with pytest.raises(ValueError, match="1–8"):
            await starts.check_deliverable(pool, DeliverableRequest(client_id=client_id, month=bad))
    assert section_requests(stub) == []
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE client_id = $1", client_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM sections WHERE client_id = $1", client_id) == 0


async def test_a_client_update_rewrites_only_the_month_sections_reading_changed_fields(
    pool, client, settings, stub, worker
):
    client_id = await new_client(pool)
    await run_month(client, settings, client_id, 1)
    record = (await clients.get(pool, client_id)).record.model_dump(by_alias=True, mode="json")
    changed = "preferredFont"
    record[changed] = "A rounded geometric sans, friendly at small sizes"
    _, was_changed = await accept_client(pool, parse_client(record))
    assert was_changed
    readers = {s.key for s in month_sections_reading(1, {changed})}
    assert readers and len(readers) < 26

    stub.reset()
    handle = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1), announce_version=2)
    result = await handle.result()
    assert result.client_version == 2
    # Written again (afresh, or revised from the stale answer by the semantic tier), or reused.
    rewritten = {s.section_key for s in result.sections if s.llm_calls > 0}
    assert rewritten == readers
    assert sum(calls(stub).values()) == len(readers)
    assert {s.cache_tier for s in result.sections if s.llm_calls == 0} == {"stored"}
    doc = await documents.latest(pool, client_id, "deliverable", document_key=deliverables.documents(1)[0].key)
    assert doc is not None and doc.version == 2 and doc.client_version == 2


async def test_regenerate_with_fields_forces_the_readers_and_refuses_unknown_fields(
    pool, client, stub, worker, settings
):
    client_id = await new_client(pool)
    await run_month(client, settings, client_id, 1)
    with pytest.raises(UnknownFields, match="notAField"):
        await regenerate_deliverable(settings, client_id, 1, ["notAField"])
    with pytest.raises(InvalidMonth):
        await regenerate_deliverable(settings, client_id, 9, ["brandValues"])
    forced = {s.key for s in month_sections_reading(1, {"brandValues"})}
    assert forced
    stub.reset()
    handle = await starts.start(
        client, settings, DeliverableRequest(client_id=client_id, month=1, regenerate=sorted(forced))
    )
    result = await handle.result()
    assert {s.section_key for s in result.sections if s.cache_tier == "none"} == forced
    assert sum(calls(stub).values()) == len(forced)
