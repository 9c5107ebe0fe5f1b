"""Monthly deliverables on the real parts: dev server, embedded Postgres, the HTTP stub via `openai`."""

from __future__ import annotations

from collections import Counter

import pytest

from domain import deliverables
from domain.outputs import output_model
from llm.client import LLMClient
from storage import documents
from tests.e2e.conftest import section_requests
from tests.e2e.test_business_plan_e2e import new_client
from wavelaunch import plans
from wavelaunch.commands import InvalidMonth, check_month
from workflows.deliverable import DeliverableWorkflow
from workflows.models import DeliverableRequest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DIGEST_KINDS = {k for k, t in deliverables.KIND_TRAITS.items() if t.uses_digest}


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
    handle = await plans.start_deliverable(client, settings, DeliverableRequest(client_id=client_id, month=month))
    return handle, await handle.result()


async def test_months_one_and_two_share_brand_context_and_build_on_a_digest(
    pool, client, settings, stub, worker, prompts
):
    client_id = await new_client(pool)

    # Month 1: 26 LLM section calls (Brand Context once, 5 x 5 others), five documents stored.
    handle, result = await run_month(client, settings, client_id, 1)
    assert handle.id == f"deliverable-{client_id}-m1"
    assert len(result.sections) == 26 and len(result.documents) == 5
    made = calls(stub)
    assert sum(made.values()) == 26
    # The stub names a request by its schema, and a section kind has one schema name.
    assert made == Counter({"brand_context": 1, **{k: 5 for k in deliverables.KIND_TRAITS if k != "brand_context"}})
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
    # digest of month 1 in the prompts of the kinds that build on earlier months.
    stub.reset()
    prompts.clear()
    handle, result = await run_month(client, settings, client_id, 2)
    assert sum(calls(stub).values()) == 25
    assert "brand_context_v1" not in prompts
    by_key = {s.section_key: s for s in result.sections}
    assert by_key["brand_context"].cache_tier == "stored" and by_key["brand_context"].llm_calls == 0
    digest_row = await pool.fetchrow(
        "SELECT text FROM deliverable_digests WHERE client_id = $1 AND month = 2", client_id
    )
    assert digest_row is not None and digest_row["text"].startswith("EARLIER MONTHS (before M2)")
    assert "M1 Foundation Excellence" in digest_row["text"] and "- Brand Architecture:" in digest_row["text"]
    for kind in DIGEST_KINDS:
        sent = prompts[f"{kind}_v1"]
        assert len(sent) == 5 and all(digest_row["text"] in m[1]["content"] for m in sent)
    for kind in set(deliverables.KIND_TRAITS) - DIGEST_KINDS - {"brand_context"}:
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
            await plans.check_deliverable(pool, DeliverableRequest(client_id=client_id, month=bad))
    assert section_requests(stub) == []
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE client_id = $1", client_id) == 0
    assert await pool.fetchval("SELECT count(*) FROM sections WHERE client_id = $1", client_id) == 0
