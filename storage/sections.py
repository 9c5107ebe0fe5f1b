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
    inputs: dict[str, str] | None = None,
) -> int:
    """Insert once; a second store of the same key (a retried activity) returns the first id.
    ``inputs``: the field values the section was written from (a later patch's "old" values)."""
    row = await pool.fetchrow(
        """INSERT INTO sections (idempotency_key, client_id, client_version, document_kind,
                                 section_key, schema_version, prompt_version, model, content, inputs)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
        inputs,
    )
    return int(row["id"])


@dataclass(frozen=True)
class WrittenFrom:
    """A stored section with the inputs it was written from (the base of a patch)."""

    id: int
    idempotency_key: str
    model: str
    content: dict[str, Any]
    inputs: dict[str, str]


async def latest_written(
    pool: asyncpg.Pool,
    *,
    client_id: str,
    document_kind: str,
    section_key: str,
    schema_version: int,
    prompt_version: int,
    model: str,
) -> WrittenFrom | None:
    """The client's most recent stored answer to this section under the same schema and prompt
    versions and model, with its inputs (sections stored before inputs were kept have none)."""
    row = await pool.fetchrow(
        """SELECT id, idempotency_key, model, content, inputs FROM sections
           WHERE client_id = $1 AND document_kind = $2 AND section_key = $3 AND schema_version = $4
             AND prompt_version = $5 AND model = $6 AND inputs IS NOT NULL
           ORDER BY id DESC LIMIT 1""",
        client_id,
        document_kind,
        section_key,
        schema_version,
        prompt_version,
        model,
    )
    return WrittenFrom(**dict(row)) if row else None


async def get_many(pool: asyncpg.Pool, ids: list[int]) -> dict[int, StoredSection]:
    rows = await pool.fetch(
        "SELECT id, idempotency_key, section_key, model, content FROM sections WHERE id = ANY($1::bigint[])",
        ids,
    )
    return {r["id"]: StoredSection(**dict(r)) for r in rows}
