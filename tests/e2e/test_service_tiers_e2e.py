"""Service tiers on the real parts: a plan wanted by a deadline is written on flex (the models
are sold on flex), a flex refusal (429 resource unavailable) falls back to standard at once, an
interactive plan stays on standard, and the ledger prices each call at the tier that served it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from temporalio.client import Client

from contracts.models import PlanRequest
from domain.sections import Level
from service import starts
from service.settings import Settings
from stubs.llm_server import StubServer
from tests.e2e.conftest import make_settings, section_requests
from tests.e2e.test_budgets_e2e import running_worker
from tests.e2e.test_business_plan_e2e import new_client
from tokenopt import pricing
from tokenopt.service_tiers import ServiceTier

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Models OpenAI sells on flex (gpt-4.1, the default, is not).
FLEX_MODELS = {"model_premium": "gpt-5", "model_standard": "gpt-5-mini", "model_economy": "gpt-5-nano"}
SECTIONS = ["executive_summary", "market_analysis", "team_structure"]


async def ledger_rows(pool: asyncpg.Pool, client_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT section_key, model, success, service_tier, prompt_tokens, cached_prompt_tokens,
                  completion_tokens, estimated_cost
           FROM usage_ledger WHERE client_id = $1 AND NOT cache_hit ORDER BY id""",
        client_id,
    )


async def plan(client: Client, queue: str, client_id: str, deadline: datetime | None) -> None:
    settings = plans_settings(queue)
    request = PlanRequest(client_id=client_id, level=Level.ESSENTIAL, sections=SECTIONS, deadline=deadline)
    handle = await starts.start(client, settings, request)
    await handle.result()


def plans_settings(queue: str) -> Settings:
    """The starter only needs the worker's task queue."""
    return make_settings(task_queue=queue)


async def test_a_deadline_writes_on_flex_and_a_refusal_falls_back_to_standard(
    client: Client, pool: asyncpg.Pool, database_url: str, llm_config, stub: StubServer
) -> None:
    client_id = await new_client(pool)
    stub.add_faults([{"kind": "resource_unavailable", "match": {"section": "market_analysis"}}])
    async with running_worker(client, database_url, llm_config, **FLEX_MODELS) as queue:
        await plan(client, queue, client_id, datetime.now(UTC) + timedelta(hours=6))

    calls = [(r["section"], r["service_tier"] or "-", r["status"]) for r in section_requests(stub)]
    assert sorted(calls) == sorted(
        [
            ("executive_summary", "flex", 200),
            ("market_analysis", "flex", 429),  # refused: made again at once on standard
            ("market_analysis", "-", 200),
            ("team_structure", "flex", 200),
        ]
    )
    rows = await ledger_rows(pool, client_id)
    by = {(r["section_key"], r["service_tier"], r["success"]): r for r in rows}
    assert set(by) == {
        ("executive_summary", "flex", True),
        ("market_analysis", "flex", False),
        ("market_analysis", "standard", True),
        ("team_structure", "flex", True),
    }
    # Each call at the price of the tier that served it; the refusal billed nothing.
    for r in rows:
        tier = ServiceTier(r["service_tier"])
        expected = pricing.cost(
            r["model"],
            prompt_tokens=r["prompt_tokens"],
            cached_tokens=r["cached_prompt_tokens"],
            completion_tokens=r["completion_tokens"],
            tier=tier,
        )
        assert Decimal(r["estimated_cost"]) == expected.quantize(Decimal("1e-8"))  # the column's scale
    assert by[("market_analysis", "flex", False)]["estimated_cost"] == 0
    flex = by[("team_structure", "flex", True)]
    standard_price = pricing.cost(
        flex["model"],
        prompt_tokens=flex["prompt_tokens"],
        cached_tokens=flex["cached_prompt_tokens"],
        completion_tokens=flex["completion_tokens"],
    )
    assert Decimal(flex["estimated_cost"]) < standard_price


async def test_an_interactive_plan_stays_on_standard(
    client: Client, pool: asyncpg.Pool, database_url: str, llm_config, stub: StubServer
) -> None:
    client_id = await new_client(pool)
    async with running_worker(client, database_url, llm_config, **FLEX_MODELS) as queue:
        await plan(client, queue, client_id, None)
    assert {r["service_tier"] for r in section_requests(stub)} == {None}
    assert {r["service_tier"] for r in await ledger_rows(pool, client_id)} == {"standard"}
