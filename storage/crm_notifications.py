"""The CRM outbox: webhooks to the CRM waiting to be delivered (see migration 0013)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import DB


@dataclass(frozen=True)
class Notification:
    id: int
    delivery_id: str
    event: str
    client_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


async def enqueue(db: DB, *, delivery_id: str, event: str, client_id: str, payload: dict[str, Any]) -> bool:
    """Store one notification; False when ``delivery_id`` is already stored (a retried activity)."""
    row = await db.fetchval(
        "INSERT INTO crm_notifications (delivery_id, event, client_id, payload) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (delivery_id) DO NOTHING RETURNING id",
        delivery_id,
        event,
        client_id,
        payload,
    )
    return row is not None


async def claim(pool: asyncpg.Pool, *, limit: int, lease_seconds: float) -> list[Notification]:
    """The oldest notifications due, each leased to this sender for ``lease_seconds`` (another
    sender skips them meanwhile; a sender that dies leaves them due again when the lease ends)."""
    rows = await pool.fetch(
        """UPDATE crm_notifications SET next_attempt_at = now() + make_interval(secs => $2)
           WHERE id IN (SELECT id FROM crm_notifications
                        WHERE delivered_at IS NULL AND next_attempt_at <= now()
                        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, delivery_id, event, client_id, payload, created_at, attempts""",
        limit,
        lease_seconds,
    )
    return sorted((Notification(**dict(r)) for r in rows), key=lambda n: n.id)


async def mark_delivered(pool: asyncpg.Pool, notification_id: int, tries: int) -> None:
    await pool.execute(
        "UPDATE crm_notifications SET delivered_at = now(), attempts = attempts + $2, last_error = NULL WHERE id = $1",
        notification_id,
        tries,
    )


async def mark_failed(pool: asyncpg.Pool, notification_id: int, tries: int, error: str, retry_in: float) -> None:
    await pool.execute(
        "UPDATE crm_notifications SET attempts = attempts + $2, last_error = $3,"
        " next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
        notification_id,
        tries,
        error[:1000],
        retry_in,
    )


async def count_pending(pool: DB) -> int:
    return await pool.fetchval("SELECT count(*) FROM crm_notifications WHERE delivered_at IS NULL")


async def for_client(pool: DB, client_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT delivery_id, event, payload, attempts, delivered_at, last_error FROM crm_notifications"
        " WHERE client_id = $1 ORDER BY id",
        client_id,
    )
    return [dict(r) for r in rows]
