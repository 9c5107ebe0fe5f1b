"""CRM webhook deliveries by X-Webhook-ID: a repeated delivery gets the first answer."""

from __future__ import annotations

from typing import Any

from storage.db import DB


async def claim(conn: DB, delivery_id: str, event: str) -> tuple[int, dict[str, Any]] | None:
    """Claim ``delivery_id`` in the caller's transaction; None if it is new, else the first answer.

    A concurrent delivery of the same id waits on the claim until the first one's transaction
    ends: it then gets the first answer or, if the first was refused (rolled back), the claim.
    """
    claimed = await conn.fetchval(
        "INSERT INTO webhook_deliveries (id, event, status_code, response) VALUES ($1, $2, 0, '{}')"
        " ON CONFLICT (id) DO NOTHING RETURNING true",
        delivery_id,
        event,
    )
    if claimed:
        return None
    row = await conn.fetchrow("SELECT status_code, response FROM webhook_deliveries WHERE id = $1", delivery_id)
    return row["status_code"], row["response"]


async def answer(conn: DB, delivery_id: str, status: int, body: dict[str, Any]) -> None:
    """Record the answer to a claimed delivery, in the claim's transaction."""
    await conn.execute(
        "UPDATE webhook_deliveries SET status_code = $2, response = $3 WHERE id = $1", delivery_id, status, body
    )
