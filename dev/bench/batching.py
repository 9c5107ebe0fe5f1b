"""`wavelaunch bench batching`: the same documents with batching on and off, per document kind.

The cost bench (workload v1) writes plans only, where batching has one small pair to share. A
deliverable month has more: five Templates/Tools and five KPIs sections (the KPIs reading the
digest of earlier months). This bench writes each client's complete plan and months 1..M twice,
on the real workflow, worker and Postgres against the HTTP stub (which answers a batch with the
sum of its members' targets), and reports the ledger per document kind and arm.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
from rich.table import Table

from bench import cost
from bench.workload import workload_v1
from contracts.models import DeliverableRequest, PlanRequest
from domain.client import parse_client
from domain.sections import Level
from service import starts
from service.intake import accept_client
from service.settings import Settings
from service.wiring import close_dependencies
from storage import db
from stubs.llm_server import StubServer
from worker import build_worker

ARMS = {"batching": [], "no_batching": ["batching"]}


async def _kind_totals(pool: asyncpg.Pool, prefix: str) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT document_type AS kind,
                  count(*) FILTER (WHERE cache_tier IS DISTINCT FROM 'stored' AND operation <> 'generate_section_batch')
                  + count(DISTINCT (run_id, activity_id, attempt)) FILTER (WHERE operation = 'generate_section_batch')
                  AS calls,
                  coalesce(sum(prompt_tokens), 0) AS prompt, coalesce(sum(completion_tokens), 0) AS completion,
                  coalesce(sum(estimated_cost), 0) AS cost
           FROM usage_ledger WHERE client_id LIKE $1 GROUP BY 1 ORDER BY 1""",
        prefix + "%",
    )
    return {
        r["kind"]: {
            "calls": r["calls"],
            "prompt_tokens": r["prompt"],
            "completion_tokens": r["completion"],
            "total_tokens": r["prompt"] + r["completion"],
            "cost": float(r["cost"]),
        }
        for r in rows
    }


async def _arm(
    arm: str, clients: list[dict[str, Any]], months: int, stub: StubServer, base: Settings, endpoints: Any, tag: str
) -> dict[str, dict[str, Any]]:
    settings = base.model_copy(update={"disabled_techniques": ARMS[arm], "task_queue": f"bench-{tag}-{arm}"})
    temporal, deps = await cost.arm_parts(settings, endpoints, stub)
    prefix = f"{tag}-{arm}-"
    try:
        async with build_worker(temporal, settings, deps):
            for record in clients:
                record = dict(record) | {"id": prefix + record["id"]}
                await accept_client(deps.pool, parse_client(record))
                plan = await starts.start(temporal, settings, PlanRequest(client_id=record["id"], level=Level.COMPLETE))
                await plan.result()
                for month in range(1, months + 1):
                    handle = await starts.start(
                        temporal, settings, DeliverableRequest(client_id=record["id"], month=month)
                    )
                    await handle.result()
        return await _kind_totals(deps.pool, prefix)
    finally:
        await close_dependencies(deps)


async def run(base: Settings, *, clients: int = 3, months: int = 2, seed: int = 7) -> dict[str, Any]:
    """Both arms over ``clients`` clients' complete plans and months 1..``months``."""
    tag = f"bb{uuid.uuid4().hex[:6]}"
    records = workload_v1(clients, seed).clients
    results: dict[str, dict[str, dict[str, Any]]] = {}
    began = time.monotonic()
    with StubServer(api_key=cost.STUB_KEY) as stub:
        async with cost.bench_stack(base) as endpoints:
            pool = await db.connect(endpoints.database_url)
            try:
                for arm in ARMS:
                    await cost.fresh_arm(stub, pool)
                    results[arm] = await _arm(arm, records, months, stub, base, endpoints, tag)
            finally:
                await pool.close()
    savings = {}
    for kind, off in results["no_batching"].items():
        on = results["batching"].get(kind, {"total_tokens": 0, "cost": 0.0, "calls": 0})
        savings[kind] = {
            "calls_saved": off["calls"] - on["calls"],
            "tokens_saved": off["total_tokens"] - on["total_tokens"],
            "token_saving": round((off["total_tokens"] - on["total_tokens"]) / off["total_tokens"], 4),
            "dollars_saved": round(off["cost"] - on["cost"], 6),
            "cost_saving": round((off["cost"] - on["cost"]) / off["cost"], 4) if off["cost"] else None,
        }
    return {
        "clients": clients,
        "months": months,
        "seed": seed,
        "arms": results,
        "savings": savings,
        "seconds": round(time.monotonic() - began, 1),
    }


def table(report: dict[str, Any]) -> Table:
    out = Table(
        title=f"Batching on/off: {report['clients']} clients, complete plan + months 1-{report['months']}",
        title_justify="left",
    )
    for column in ("kind", "arm", "calls", "prompt", "completion", "total", "dollars", "tokens saved", "$ saved"):
        out.add_column(column, justify="left" if column in ("kind", "arm") else "right")
    for kind, saving in report["savings"].items():
        for arm in ARMS:
            row = report["arms"][arm].get(kind)
            if row is None:
                continue
            first = arm == "batching"
            out.add_row(
                kind if first else "",
                arm,
                f"{row['calls']:,}",
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"{row['total_tokens']:,}",
                f"${Decimal(str(row['cost'])):.4f}",
                f"{saving['tokens_saved']:,} ({saving['token_saving']:.1%})" if first else "",
                f"${saving['dollars_saved']:.4f} ({saving['cost_saving'] or 0:.1%})" if first else "",
            )
    return out
