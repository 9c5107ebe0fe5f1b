"""`wavelaunch bench budget`: the budget race. Many plans at once against a small hard limit.

Two arms on the same workload, each with a fresh global daily budget:
- reserve (ours): every call reserves its upper-bound estimate (prompt + max completion tokens)
  in Postgres before it is made, atomically with the check, and settles the bill after;
- check only: the same check against what is already billed, with nothing held while calls run
  (the usual "if used < limit: call" guard), to show the overshoot the reservation prevents.

Overshoot = billed - limit (what was spent above the limit), and the committed peak
(used + reserved at its highest) - limit. The stub answers at a fixed speed per token so that
many calls are in flight at once, as they are against a real provider.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from temporalio.client import WorkflowFailureError

from activities.budget_guard import BudgetGuard
from bench.cost import STUB_KEY, bench_stack, fresh_arm, llm_config
from bench.workload import make_clients
from contracts.models import PlanRequest
from domain.budgets import BudgetScope, BudgetSpec, Period
from domain.catalogue.plan import resolve_sections
from domain.client import parse_client
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import close_dependencies, connect_temporal, ensure_search_attributes
from service.wiring import plan_dependencies as build_dependencies
from storage import budgets, db
from stubs.llm_server import StubServer
from worker import build_worker

ARMS = ("reserve", "check_only")


async def run(
    base: Settings,
    *,
    plans_count: int,
    token_limit: int,
    level: Level,
    seconds_per_token: float,
    concurrency: int,
) -> dict[str, Any]:
    """Both arms; returns the report (also the JSON written to disk)."""
    tag = f"r{uuid.uuid4().hex[:6]}"
    arms: dict[str, Any] = {}
    with StubServer(api_key=STUB_KEY, latency_per_completion_token=seconds_per_token) as stub:
        async with bench_stack(base) as endpoints:
            pool = await db.connect(endpoints.database_url)
            try:
                for arm in ARMS:
                    settings = base.model_copy(
                        update={
                            "task_queue": f"bench-{tag}-{arm}",
                            "worker_max_concurrent_activities": concurrency,
                            "budget_on_pause": "fail",
                        }
                    )
                    await fresh_arm(stub, pool)  # every arm writes its templates itself
                    arms[arm] = await _arm(
                        arm, settings, endpoints.temporal_address, endpoints.database_url, pool, stub,
                        prefix=f"{tag}-{arm}-", plans_count=plans_count, token_limit=token_limit, level=level,
                    )  # fmt: skip
            finally:
                await pool.close()
    return {
        "plans": plans_count,
        "level": level.value,
        "sections_per_plan": len(resolve_sections(level)),
        "token_limit": token_limit,
        "worker_concurrency": concurrency,
        "seconds_per_completion_token": seconds_per_token,
        "arms": arms,
        "notes": [
            "billed = settled tokens in the budget's counters (the API's usage, as the ledger records it).",
            "The estimate is prompt tokens (tiktoken, schema included) + max_completion_tokens (twice the "
            "section's target), so the reserve arm admits fewer calls at once than the limit would fit at "
            "their actual size: the price of a hard limit.",
        ],
    }


def _refused(err: BaseException) -> bool:
    """A plan that failed on the budget (a section, or the template call when assembling)."""
    cause: BaseException | None = err.cause if isinstance(err, WorkflowFailureError) else None
    while cause is not None:
        if "budget" in str(cause):
            return True
        cause = getattr(cause, "cause", None)
    return False


async def _arm(
    arm: str,
    settings: Settings,
    temporal_address: str,
    database_url: str,
    pool: asyncpg.Pool,
    stub: StubServer,
    *,
    prefix: str,
    plans_count: int,
    token_limit: int,
    level: Level,
) -> dict[str, Any]:
    await pool.execute("DELETE FROM budgets WHERE scope = 'global'")
    budget = await budgets.set_budget(
        pool,
        BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.DAILY, token_limit=token_limit, thresholds=[100]),
    )
    temporal = await connect_temporal(settings, temporal_address)
    await ensure_search_attributes(temporal, settings.temporal_namespace)
    deps = await build_dependencies(settings, database_url, llm_config(stub))
    if arm == "check_only":
        deps.guard = BudgetGuard(deps.pool, deps.guard.notifier, free_models=deps.free_models, reserve_estimate=False)
    records = []
    for i, record in enumerate(make_clients(plans_count, seed=13)):
        record["id"] = f"{prefix}{i}"
        await accept_client(pool, parse_client(record))
        records.append(record)
    began = time.monotonic()
    try:
        async with build_worker(temporal, settings, deps):
            handles = [
                await starts.start(temporal, settings, PlanRequest(client_id=r["id"], level=level)) for r in records
            ]
            outcomes = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    finally:
        await close_dependencies(deps)
    seconds = time.monotonic() - began
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = [f for f in failures if not _refused(f)]
    if unexpected:
        raise RuntimeError(f"{len(unexpected)} plan(s) failed for another reason than the budget: {unexpected[0]!r}")

    [use] = [u for u in await budgets.usage(pool) if u.budget_id == budget.budget_id]
    peak_tokens, _ = await budgets.peak(pool, budget.budget_id)
    ledger = await pool.fetchrow(
        """SELECT coalesce(sum(total_tokens), 0) AS tokens,
                  count(*) FILTER (WHERE success AND operation = 'generate_section' AND cache_tier = 'none') AS written
           FROM usage_ledger WHERE client_id LIKE $1""",
        prefix + "%",
    )
    requested = plans_count * len(resolve_sections(level))
    return {
        "billed_tokens": use.tokens_used,
        "ledger_tokens": ledger["tokens"],
        "billed_cost": float(use.cost_used),
        "overshoot_tokens": use.tokens_used - token_limit,
        # What was committed (used + reserved) at its highest; the check-only arm commits nothing
        # before a call is billed, so it has no such figure.
        "committed_peak_tokens": peak_tokens if arm == "reserve" else None,
        "committed_peak_over_limit": peak_tokens - token_limit if arm == "reserve" else None,
        "sections_requested": requested,
        "sections_written": ledger["written"],
        "sections_refused": requested - ledger["written"],
        "plans_completed": plans_count - len(failures),
        "plans_failed_on_budget": len(failures),
        "llm_calls": len([r for r in stub.requests() if r["status"] == 200]),
        "seconds": round(seconds, 2),
    }
