"""The webhook intake's outbox: workflow starts waiting to be sent to Temporal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.db import DB, transaction


@dataclass(frozen=True)
class PendingStart:
    id: int
    workflow_id: str
    action: str
    # The command's JSON, as stored; crm/outbox_commands.py parses it (with ``action``).
    request: dict[str, Any]
    attempts: int
    last_error: str | None = None


async def enqueue(db: DB, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Store (workflow_id, action, request) rows, in this order, in one transaction (or in the
    caller's, given its connection)."""
    async with transaction(db) as conn:
        await conn.executemany("INSERT INTO workflow_starts (workflow_id, action, request) VALUES ($1, $2, $3)", rows)


async def pending(conn: asyncpg.Connection | asyncpg.Pool, *, limit: int) -> list[PendingStart]:
    """The oldest rows not yet sent."""
    rows = await conn.fetch(
        "SELECT id, workflow_id, action, request, attempts, last_error FROM workflow_starts"
        " WHERE done_at IS NULL ORDER BY id LIMIT $1",
        limit,
    )
    return [PendingStart(**dict(r)) for r in rows]


async def count_pending(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE done_at IS NULL")


async def mark_done(pool: asyncpg.Pool, ids: list[int]) -> None:
    if ids:
        await pool.execute(
            "UPDATE workflow_starts SET done_at = now(), attempts = attempts + 1 WHERE id = ANY($1)", ids
        )


async def mark_failed(pool: asyncpg.Pool, start_id: int, error: str) -> None:
    await pool.execute(
        "UPDATE workflow_starts SET attempts = attempts + 1, last_error = $2 WHERE id = $1", start_id, error[:1000]
    )
