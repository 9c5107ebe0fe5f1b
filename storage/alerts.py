"""Alerts: budget thresholds crossed and a cache hit rate under its target, once each."""

from __future__ import annotations

import asyncpg

from domain.budgets import Alert

_COLUMNS = "id, kind, message, budget_id, threshold, created_at, delivered, delivery_error"


async def insert(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    kind: str,
    dedupe_key: str,
    message: str,
    budget_id: int | None = None,
    threshold: int | None = None,
) -> Alert | None:
    """Record an alert; None when one with ``dedupe_key`` exists (it has already been raised)."""
    row = await db.fetchrow(
        f"""INSERT INTO alerts (kind, dedupe_key, message, budget_id, threshold) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (dedupe_key) DO NOTHING RETURNING {_COLUMNS}""",
        kind,
        dedupe_key,
        message,
        budget_id,
        threshold,
    )
    return Alert(**dict(row)) if row else None


async def mark_delivery(pool: asyncpg.Pool, alert_id: int, error: str | None) -> None:
    """Record the outcome of POSTing the alert to the webhook."""
    await pool.execute(
        "UPDATE alerts SET delivered = $2, delivery_error = $3 WHERE id = $1", alert_id, error is None, error
    )


async def recent(pool: asyncpg.Pool, limit: int = 50) -> list[Alert]:
    """The newest alerts first."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM alerts ORDER BY created_at DESC, id DESC LIMIT $1", limit)
    return [Alert(**dict(r)) for r in rows]
