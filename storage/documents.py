"""Document versions: an ordered list of section ids plus the rendered Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    changes: list[dict[str, Any]]


_COLUMNS = (
    "id, client_id, kind, version, level, client_version, workflow_id, section_ids, markdown, created_at, changes"
)


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
    changes: list[dict[str, Any]] | None = None,
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
                                       workflow_id, run_id, section_ids, markdown, changes)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}""",
            client_id,
            kind,
            version,
            level,
            client_version,
            workflow_id,
            run_id,
            section_ids,
            markdown,
            changes or [],
        )
        return StoredDocument(**dict(row))


async def latest(
    pool: asyncpg.Pool, client_id: str, kind: str, *, excluding_run: tuple[str, str] | None = None
) -> StoredDocument | None:
    """The newest version, or the newest not stored by ``excluding_run`` (workflow id, run id)."""
    workflow_id, run_id = excluding_run or ("", "")
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE client_id=$1 AND kind=$2"
        " AND NOT (workflow_id = $3 AND run_id IS NOT DISTINCT FROM $4)"
        " ORDER BY version DESC LIMIT 1",
        client_id,
        kind,
        workflow_id,
        run_id,
    )
    return StoredDocument(**dict(row)) if row else None
