"""A month that can wait goes through the Batch API on the real parts: the dev server (real
durable timers), embedded Postgres and the stub's Batch API. Due in 3 days, its sections are one
batch at half the price, stored as direct generations store them; a batch that fails or expires
leaves them to direct calls, made before the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.models import DeliverableRequest
from domain.catalogue import deliverables
from service import starts
from storage import documents, sections
from tests.e2e.conftest import section_requests
from tests.e2e.test_business_plan_e2e import new_client
from tokenopt import pricing

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

M1 = [s.key for s in deliverables.month_sections(1)]


async def run_month(client, settings, client_id: str, due: timedelta):  # type: ignore[no-untyped-def]
    deadline = datetime.now(UTC) + due
    request = DeliverableRequest(client_id=client_id, month=1, deadline=deadline, batch_poll_seconds=1)
    handle = await starts.start(client, settings, request)
    return deadline, await handle.result()


async def rows(pool, client_id: str, operation: str):  # type: ignore[no-untyped-def]
    return await pool.fetch(
        "SELECT * FROM usage_ledger WHERE client_id = $1 AND operation = $2 ORDER BY id", client_id, operation
    )


async def test_a_month_due_in_three_days_is_written_by_one_batch_at_half_price(pool, client, settings, stub, worker):
    client_id = await new_client(pool)
    _, result = await run_month(client, settings, client_id, timedelta(days=3))

    [batch] = stub.batches()
    assert batch["status"] == "completed" and batch["lines"] == len(M1)
    # Not one direct call: every section came from the batch.
    assert section_requests(stub) == []
    batch_rows = await rows(pool, client_id, "batch_section")
    assert len(batch_rows) == len(M1) and all(r["success"] for r in batch_rows)
    assert sorted(r["section_key"] for r in batch_rows) == sorted(M1)
    for r in batch_rows:
        standard = pricing.cost(r["model"], prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"])
        assert r["service_tier"] == "batch" and r["estimated_cost"] == round(standard / 2, 8) > 0
        assert r["baseline_cost"] > r["estimated_cost"]
    # The month reports what the batch spent, section by section, and its documents hold the
    # sections the batch stored (section rows and exact cache entries, as direct calls leave).
    assert result.total_cost == pytest.approx(sum(r["estimated_cost"] for r in batch_rows), abs=Decimal("1e-7"))
    assert {s.section_key for s in result.sections} == set(M1) and all(s.llm_calls == 1 for s in result.sections)
    stored = await sections.get_many(pool, [s.section_id for s in result.sections])
    assert {s.section_key for s in stored.values()} == set(M1)
    assert len(result.documents) == 5
    doc = await documents.latest(pool, client_id, "deliverable", document_key=result.documents[0].document_key)
    assert doc is not None and set(doc.section_ids) <= {s.section_id for s in result.sections}
    cached = await pool.fetch(
        "SELECT section_key FROM cache_entries WHERE client_id = $1 AND tier = 'exact'", client_id
    )
    assert {r["section_key"] for r in cached} == set(M1)

    # The same month again, interactive: everything comes from what the batch stored.
    stub.reset()
    handle = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1))
    again = await handle.result()
    assert stub.requests() == [] and again.total_cost == 0


@pytest.mark.parametrize("kind", ["fail", "expire"])
async def test_a_batch_that_fails_or_expires_leaves_the_month_to_direct_calls_before_the_deadline(
    pool, client, settings, stub, worker, kind
):
    client_id = await new_client(pool)
    stub.add_batch_faults([{"kind": kind}])
    deadline, result = await run_month(client, settings, client_id, timedelta(days=3))

    [batch] = stub.batches()
    assert batch["status"] == ("failed" if kind == "fail" else "expired")
    # Every section written directly (small ones several to a call: tokenopt.batching), in time.
    assert section_requests(stub) and all(r["status"] == 200 for r in section_requests(stub))
    direct = [*await rows(pool, client_id, "generate_section"), *await rows(pool, client_id, "generate_section_batch")]
    assert sorted(r["section_key"] for r in direct if r["success"]) == sorted(M1)
    assert all(r["created_at"] < deadline for r in direct)
    assert [r for r in await rows(pool, client_id, "batch_section") if r["success"]] == []
    assert len(result.sections) == len(M1) and len(result.documents) == 5
