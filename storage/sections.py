"""Generated sections, addressed by their idempotency key (claim check for workflows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class StoredSection:
    id: int
    idempotency_key: str
    section_key: str
    model: str
    content: dict[str, Any]


async def find(pool: asyncpg.Pool, idempotency_key: str) -> StoredSection | None:
    row = await pool.fetchrow(
        "SELECT id, idempotency_key, section_key, model, content FROM sections WHERE idempotency_key = $1",
        idempotency_key,
    )
    return StoredSection(**dict(row)) if row else None


async def store(
    pool: asyncpg.Pool,
    *,
    idempotency_key: str,
    client_id: str,
    client_version: int,
    document_kind: str,
    section_key: str,
    schema_version: int,
    prompt_version: int,
    model: str,
    content: dict[str, Any],
) -> int:
    """Insert once; a second store of the same key (a retried activity) returns the first id."""
    row = await pool.fetchrow(
        """INSERT INTO sections (idempotency_key, client_id, client_version, document_kind,
                                 section_key, schema_version, prompt_version, model, content)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key
           RETURNING id""",
        idempotency_key,
        client_id,
        client_version,
        document_kind,
        section_key,
        schema_version,
        prompt_version,
        model,
        content,
    )
    return int(row["id"])


async def get_many(pool: asyncpg.Pool, ids: list[int]) -> dict[int, StoredSection]:
    rows = await pool.fetch(
        "SELECT id, idempotency_key, section_key, model, content FROM sections WHERE id = ANY($1::bigint[])",
        ids,
    )
    return {r["id"]: StoredSection(**dict(r)) for r in rows}
