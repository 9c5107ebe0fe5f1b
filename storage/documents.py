"""Document versions: an ordered list of section ids plus the rendered Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class StoredDocument:
    id: int
    client_id: str
    kind: str
    version: int
    level: str | None
    client_version: int
    workflow_id: str
    section_ids: list[int]
    markdown: str
    created_at: datetime


_COLUMNS = "id, client_id, kind, version, level, client_version, workflow_id, section_ids, markdown, created_at"


async def store(
    pool: asyncpg.Pool,
    *,
    client_id: str,
    kind: str,
    level: str | None,
    client_version: int,
    workflow_id: str,
    run_id: str,
    section_ids: list[int],
    markdown: str,
) -> StoredDocument:
    """Store the next version; idempotent per workflow run (a retried activity stores once)."""
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM documents WHERE workflow_id=$1 AND run_id=$2",
            workflow_id,
            run_id,
        )
        if existing:
            return StoredDocument(**dict(existing))
        # Serialise version numbering per client and kind.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{client_id}/{kind}")
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM documents WHERE client_id=$1 AND kind=$2",
            client_id,
            kind,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO documents (client_id, kind, version, level, client_version,
                                       workflow_id, run_id, section_ids, markdown)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}""",
            client_id,
            kind,
            version,
            level,
            client_version,
            workflow_id,
            run_id,
            section_ids,
            markdown,
        )
        return StoredDocument(**dict(row))


async def latest(pool: asyncpg.Pool, client_id: str, kind: str) -> StoredDocument | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE client_id=$1 AND kind=$2 ORDER BY version DESC LIMIT 1",
        client_id,
        kind,
    )
    return StoredDocument(**dict(row)) if row else None
