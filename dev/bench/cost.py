"""`wavelaunch bench cost`: the same workload through every arm, in one run, on the real stack.

Arms:
- naive: the seed's way on the same stub and tokenizer: one verbose prompt per document (persona,
  every client field, the request), the top model, no cache, full regeneration on any change,
  and a failure mid-way restarts the document from scratch (the cut-off half is still billed).
- optimized: everything this project does, through the real workflow, worker and Postgres.
- lower bound: the independent lower bound of the workload (``bench.lower_bound``:
  every distinct section once at its catalogue size with a minimal prompt, revisions as patches,
  on the economy model), never read from a ledger.
- ablations: optimized with one technique switched off at a time.

The stub answers each section with the same number of tokens in every arm (its catalogue
target; a naive document gets the sum), so no arm wins by answering shorter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from openai import AsyncOpenAI
from temporalio.client import Client

import stack
from activities.dependencies import PlanDependencies
from bench.lower_bound import lower_bound
from bench.totals import Totals
from bench.workload import Event, EventKind, Workload
from contracts.models import PlanRequest
from domain.catalogue.plan import resolve_sections
from domain.client import parse_client
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import LLMConfig, close_dependencies, connect_temporal, ensure_search_attributes, plan_dependencies
from storage import cache, db
from stubs.llm_server import TARGET_HEADER, StubServer
from tokenopt import naive, pricing
from tokenopt.techniques import Technique
from worker import build_worker

log = logging.getLogger(__name__)
STUB_KEY = "bench"

ABLATIONS: tuple[Technique, ...] = (
    Technique.STRUCTURED_PROMPTS,
    Technique.CONTEXT_COMPRESSION,
    Technique.ROUTING,
    Technique.PREFIX_LAYOUT,
    Technique.BUDGET_COMPRESSION,
    Technique.REUSE,
    Technique.EXACT_CACHE,
    Technique.SEMANTIC_CACHE,
    Technique.BATCHING,
)


def llm_config(stub: StubServer) -> LLMConfig:
    return LLMConfig(api_key=STUB_KEY, base_url=stub.base_url, model_override=None, free_models=frozenset())


# -- naive ----------------------------------------------------------------------------------
async def run_naive(workload: Workload, stub: StubServer, settings: Settings) -> Totals:
    """The seed's way, event by event, against the same stub."""
    client = AsyncOpenAI(api_key=STUB_KEY, base_url=stub.base_url, max_retries=0)
    totals = Totals()
    began = time.monotonic()
    records = [dict(c) for c in workload.clients]
    try:
        for event in workload.events:
            record = records[event.client]
            if event.kind is EventKind.REVISE:
                record.update(event.changes)
            specs = resolve_sections(Level(event.level))
            target = sum(s.target_tokens for s in specs)
            messages = naive.naive_messages(record, specs)
            calls = [target // 2, None] if event.fail_section else [None]  # cut off mid-way, then again
            for limit in calls:
                response = await client.chat.completions.create(
                    model=settings.naive_model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=limit,
                    extra_headers={TARGET_HEADER: str(target)},
                )
                usage = response.usage
                assert usage is not None
                totals.calls += 1
                totals.prompt_tokens += usage.prompt_tokens
                totals.completion_tokens += usage.completion_tokens
                totals.cost += pricing.cost(
                    settings.naive_model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                )
    finally:
        await client.close()
    totals.seconds = time.monotonic() - began
    return totals


# -- optimized and ablations ------------------------------------------------------------------
async def arm_parts(
    settings: Settings, endpoints: stack.StackEndpoints, stub: StubServer
) -> tuple[Client, PlanDependencies]:
    """An arm's Temporal client (search attributes registered) and its workers' dependencies,
    on the stub."""
    temporal = await connect_temporal(settings, endpoints.temporal_address)
    await ensure_search_attributes(temporal, settings.temporal_namespace)
    return temporal, await plan_dependencies(settings, endpoints.database_url, llm_config(stub))


async def run_optimized(
    arm: str,
    workload: Workload,
    stub: StubServer,
    settings: Settings,
    endpoints: stack.StackEndpoints,
    pool: asyncpg.Pool,
    tag: str,
) -> Totals:
    """Run every event through the real workflow with ``settings``' techniques."""
    temporal, deps = await arm_parts(settings, endpoints, stub)
    prefix = f"{tag}-{arm}-"
    records = [dict(c) | {"id": prefix + c["id"]} for c in workload.clients]
    began = time.monotonic()
    try:
        async with build_worker(temporal, settings, deps):
            for event in workload.events:
                await _apply(event, records, pool, temporal, settings, stub)
    finally:
        await close_dependencies(deps)
    totals = await ledger_totals(pool, prefix)
    totals.seconds = time.monotonic() - began
    totals.extra.update(await _reuse_figures(pool, prefix))
    return totals


async def _apply(
    event: Event,
    records: list[dict[str, Any]],
    pool: asyncpg.Pool,
    temporal: Any,
    settings: Settings,
    stub: StubServer,
) -> None:
    record = records[event.client]
    if event.kind in (EventKind.ONBOARD, EventKind.REVISE):
        record.update(event.changes)
        await accept_client(pool, parse_client(record))
    if event.fail_section:
        stub.add_faults([{"kind": "invalid_json", "times": 1, "match": {"section": event.fail_section}}])
    handle = await starts.start(temporal, settings, PlanRequest(client_id=record["id"], level=Level(event.level)))
    await handle.result()


async def ledger_totals(pool: asyncpg.Pool, client_prefix: str) -> Totals:
    # A batch call writes one row per member; it is one call (one activity attempt makes one).
    row = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE cache_tier IS DISTINCT FROM 'stored' AND operation <> 'generate_section_batch')
                  + count(DISTINCT (run_id, activity_id, attempt)) FILTER (WHERE operation = 'generate_section_batch')
                  AS calls,
                  coalesce(sum(prompt_tokens), 0) AS p, coalesce(sum(cached_prompt_tokens), 0) AS c,
                  coalesce(sum(completion_tokens), 0) AS o, coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger WHERE client_id LIKE $1""",
        client_prefix + "%",
    )
    return Totals(
        calls=row["calls"],
        prompt_tokens=row["p"],
        cached_tokens=row["c"],
        completion_tokens=row["o"],
        cost=row["cost"],
    )


async def _reuse_figures(pool: asyncpg.Pool, prefix: str) -> dict[str, Any]:
    """Sections served per cache tier, and the hit rate over sections served."""
    rows = await pool.fetch(
        """SELECT coalesce(cache_tier, 'none') AS tier, count(*) AS n
           FROM usage_ledger
           WHERE client_id LIKE $1 AND success
             AND operation IN ('generate_section', 'generate_section_batch', 'revise_section')
           GROUP BY 1""",
        prefix + "%",
    )
    served = {r["tier"]: r["n"] for r in rows}
    total = sum(served.values())
    extra = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE escalated AND success) AS escalated,
                  count(*) FILTER (WHERE cardinality(compression_steps) > 0) AS compressed
           FROM usage_ledger WHERE client_id LIKE $1""",
        prefix + "%",
    )
    return {
        "served_by_tier": served,
        "hit_rate": round((total - served.get("none", 0)) / total, 4) if total else 0.0,
        "escalated": extra["escalated"],
        "compressed": extra["compressed"],
    }


# -- the run --------------------------------------------------------------------------------
def bench_settings(base: Settings) -> Settings:
    """The benchmarks' embedded stack: its own state dir and ports, so a running dev stack is
    untouched."""
    from stack.processes import free_port

    return base.model_copy(
        update={"state_dir": base.state_dir / "bench", "temporal_port": free_port(), "temporal_ui_port": free_port()}
    )


@contextlib.asynccontextmanager
async def bench_stack(base: Settings) -> AsyncIterator[stack.StackEndpoints]:
    """The embedded stack in its own state dir and ports (``bench_settings``)."""
    async with stack.running_stack(bench_settings(base), with_llm=False) as endpoints:
        yield endpoints


def arm_settings(base: Settings, arm: str, tag: str) -> Settings:
    """An arm's settings on its own task queue: ``optimized`` with every technique on,
    ``no_<technique>`` with that one off, ``no_<a>+<b>`` with both off (an unknown name fails
    when the worker starts)."""
    off = [] if arm == "optimized" else arm.removeprefix("no_").split("+")
    return base.model_copy(update={"disabled_techniques": off, "task_queue": f"bench-{tag}-{arm}"})


async def fresh_arm(stub: StubServer, pool: asyncpg.Pool) -> None:
    """No arm sees another's provider prefix cache, nor its client-independent template entries."""
    stub.reset()
    await cache.purge(pool)


async def run(workload: Workload, base: Settings, arms: list[str] | None = None) -> dict[str, Any]:
    """Every arm over ``workload``; returns the report (also the JSON written to disk)."""
    tag = f"b{uuid.uuid4().hex[:6]}"
    wanted = arms or ["naive", "optimized", *(f"no_{t.value}" for t in ABLATIONS)]
    results: dict[str, Totals] = {}
    with StubServer(api_key=STUB_KEY) as stub:
        if "naive" in wanted:
            results["naive"] = await run_naive(workload, stub, base)
        async with bench_stack(base) as endpoints:
            pool = await db.connect(endpoints.database_url)
            try:
                for arm in wanted:
                    if arm == "naive":
                        continue
                    settings = arm_settings(base, arm, tag)
                    await fresh_arm(stub, pool)
                    log.info("arm %s ...", arm)
                    results[arm] = await run_optimized(arm, workload, stub, settings, endpoints, pool, tag)
            finally:
                await pool.close()
    results["lower_bound"] = independent_bound(workload, base)
    return report(workload, results)


def independent_bound(workload: Workload, base: Settings) -> Totals:
    """The independent lower bound (``bench.lower_bound``), all kinds together."""
    out = Totals(extra={"method": "independent"})
    for t in lower_bound(workload, base.model_economy).kinds.values():
        out.calls += t.calls
        out.prompt_tokens += t.prompt_tokens
        out.completion_tokens += t.completion_tokens
        out.cost += t.cost
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def report(workload: Workload, results: dict[str, Totals]) -> dict[str, Any]:
    naive_t = results.get("naive")
    opt = results.get("optimized")
    arms: dict[str, Any] = {}
    for name, totals in results.items():
        entry = totals.as_dict()
        if naive_t:
            entry["token_ratio"] = _ratio(totals.total_tokens, naive_t.total_tokens)
            entry["cost_ratio"] = _ratio(float(totals.cost), float(naive_t.cost))
        if opt and name.startswith("no_") and naive_t:
            # What switching this technique off costs, as a share of the naive bill.
            entry["marginal_token_saving"] = _ratio(totals.total_tokens - opt.total_tokens, naive_t.total_tokens)
            entry["marginal_cost_saving"] = _ratio(float(totals.cost - opt.cost), float(naive_t.cost))
        arms[name] = entry
    counts: dict[str, int] = {}
    for e in workload.events:
        counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    counts["failures_injected"] = sum(1 for e in workload.events if e.fail_section)
    lb = results.get("lower_bound")
    return {
        "workload": {
            "name": workload.name,
            "seed": workload.seed,
            "clients": len(workload.clients),
            "events": counts,
        },
        "arms": arms,
        "token_ratio": arms.get("optimized", {}).get("token_ratio"),
        "cost_ratio": arms.get("optimized", {}).get("cost_ratio"),
        "lower_bound_ratio": _ratio(opt.total_tokens, lb.total_tokens) if opt and lb else None,
        "lower_bound_cost_ratio": _ratio(float(opt.cost), float(lb.cost)) if opt and lb else None,
        "lower_bound_vs_naive": _ratio(lb.total_tokens, naive_t.total_tokens) if lb and naive_t else None,
        "notes": [
            "Completion sizes are the catalogue targets in every arm (the stub), so savings from "
            "JSON output over prose are not credited here; they need a real model to measure.",
            "Token counts are cl100k estimates computed by the stub (o200k files are not available "
            "offline); dollars use genai-prices for the routed OpenAI models.",
        ],
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
