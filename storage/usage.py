"""The usage ledger: one row per LLM call or reuse, and the report over it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import BaseModel, Field


class UsageRecord(BaseModel):
    """What one call cost, and what the naive way would have cost for the same output."""

    operation: str
    model: str
    # Unique per call or hit: the row is written at most once however often the write is retried.
    call_id: str | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost: Decimal = Decimal(0)
    client_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    activity_id: str | None = None
    attempt: int = 1
    document_type: str | None = None
    section_key: str | None = None
    cache_hit: bool = False
    cache_tier: str | None = None
    cache_key: str | None = None
    request_duration_ms: int | None = None
    success: bool = True
    error_message: str | None = None
    routing_tier: str | None = None
    escalated: bool = False
    compression_steps: list[str] = Field(default_factory=list)
    baseline_prompt_tokens: int = 0
    baseline_completion_tokens: int = 0
    baseline_cost: Decimal = Decimal(0)
    # The service tier a billed call was served on: standard, flex or batch (None: no call).
    service_tier: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def saved_tokens(self) -> int:
        return self.baseline_prompt_tokens + self.baseline_completion_tokens - self.total_tokens

    @property
    def saved_cost(self) -> Decimal:
        return self.baseline_cost - self.estimated_cost


async def record(pool: asyncpg.Pool, usage: UsageRecord) -> bool:
    """Write the row; False when a row with its ``call_id`` is already there (a retried write)."""
    data = usage.model_dump()
    data.update(total_tokens=usage.total_tokens, saved_tokens=usage.saved_tokens, saved_cost=usage.saved_cost)
    columns = list(data)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    status = await pool.execute(
        f"INSERT INTO usage_ledger ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT (call_id) DO NOTHING",
        *data.values(),
    )
    return status.endswith(" 1")


# Reuse, defined once for `cache stats`, /metrics, the dashboard and the hit-rate alert:
# - a request is a section or summary served: a successful row of an operation that serves one
#   (failed attempts and embeddings are costs, not requests);
# - a hit is a request served with no model call (stored, exact; semantic when served as is).
#   A patch or a full generation is a billed call and never a hit, whatever its cache tier; rows
#   written before this definition that billed tokens do not count either.
SERVING_OPERATIONS = (
    "generate_section",
    "generate_section_batch",
    "batch_section",
    "patch_section",
    "revise_section",
    "summarize_thread",
    "summarize_client",
)
REQUEST = f"success AND operation IN ({', '.join(repr(o) for o in SERVING_OPERATIONS)})"
HIT = f"{REQUEST} AND cache_hit AND total_tokens = 0"

_TOTALS = f"""
    count(*) AS calls,
    count(*) FILTER (WHERE NOT success) AS failures,
    count(*) FILTER (WHERE {REQUEST}) AS requests,
    count(*) FILTER (WHERE {HIT}) AS cache_hits,
    coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
    coalesce(sum(cached_prompt_tokens), 0) AS cached_prompt_tokens,
    coalesce(sum(completion_tokens), 0) AS completion_tokens,
    coalesce(sum(total_tokens), 0) AS total_tokens,
    coalesce(sum(estimated_cost), 0) AS cost,
    coalesce(sum(baseline_prompt_tokens + baseline_completion_tokens), 0) AS baseline_tokens,
    coalesce(sum(baseline_cost), 0) AS baseline_cost,
    coalesce(sum(saved_tokens), 0) AS saved_tokens,
    coalesce(sum(saved_cost), 0) AS saved_cost
"""


def _row(row: asyncpg.Record) -> dict[str, Any]:
    out = {k: (float(v) if isinstance(v, Decimal) else v) for k, v in dict(row).items()}
    requests = out.get("requests") or 0
    out["cache_hit_rate"] = (out["cache_hits"] / requests) if requests else 0.0
    return out


# Groups of the report: name in the output -> SQL expression. Days are UTC calendar days.
_GROUPS = {
    "operation": "operation",
    "model": "model",
    "client": "client_id",
    "cache_tier": "cache_tier",
    "section_key": "section_key",
    "document_type": "document_type",
    "service_tier": "service_tier",
    "day": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


async def report(
    pool: asyncpg.Pool, *, client_id: str | None = None, workflow_id: str | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """Totals, and the same figures per operation, model, client, cache tier, section, document
    type, service tier and day (``by_day`` oldest first; the other groups by cost, highest first).

    The one query behind ``wavelaunch usage report --json``, the dashboard and ``/metrics``.
    """
    where, args = ["true"], []
    if client_id:
        args.append(client_id)
        where.append(f"client_id = ${len(args)}")
    if workflow_id:
        args.append(workflow_id)
        where.append(f"workflow_id = ${len(args)}")
    if run_id:
        args.append(run_id)
        where.append(f"run_id = ${len(args)}")
    cond = " AND ".join(where)
    totals = _row(await pool.fetchrow(f"SELECT {_TOTALS} FROM usage_ledger WHERE {cond}", *args))
    out: dict[str, Any] = {"totals": totals}
    for name, expression in _GROUPS.items():
        order = "key" if name == "day" else "cost DESC, key"
        rows = await pool.fetch(
            f"SELECT coalesce({expression}, '-') AS key, {_TOTALS} FROM usage_ledger WHERE {cond}"
            f" GROUP BY 1 ORDER BY {order}",
            *args,
        )
        out[f"by_{name}"] = {r["key"]: _row(r) for r in rows}
    out["cache_hit_rate_by_tier"] = hit_rate_by_tier(out)
    return out


def hit_rate_by_tier(report: dict[str, Any]) -> dict[str, float]:
    """The share of all requests each cache tier served without a call (the tiers add up to the
    report's overall ``cache_hit_rate``); tiers that only bill (none, patch) are left out."""
    requests = report["totals"]["requests"]
    return {
        tier: (row["cache_hits"] / requests if requests else 0.0)
        for tier, row in report["by_cache_tier"].items()
        if row["cache_hits"]
    }


async def recent_workflows(pool: asyncpg.Pool, *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest generations (one row per workflow run) with what they cost, newest first."""
    rows = await pool.fetch(
        f"""SELECT workflow_id, run_id, min(client_id) AS client_id, min(document_type) AS document_type,
                   min(created_at) AS started_at, max(created_at) AS last_call_at, {_TOTALS}
            FROM usage_ledger WHERE workflow_id IS NOT NULL
            GROUP BY workflow_id, run_id ORDER BY max(created_at) DESC LIMIT $1""",
        limit,
    )
    out = []
    for r in rows:
        row = _row(r)
        row["started_at"] = r["started_at"].isoformat()
        row["last_call_at"] = r["last_call_at"].isoformat()
        out.append(row)
    return out
