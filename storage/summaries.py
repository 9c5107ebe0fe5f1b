"""Versions of thread and client summaries (claim check: workflows carry their ids only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class StoredThreadSummary:
    id: int
    client_id: str
    thread_id: str
    version: int
    from_seq: int
    through_seq: int
    schema_version: int
    content: dict[str, Any]
    model: str
    prompt_tokens: int
    completion_tokens: int
    created_at: datetime


@dataclass(frozen=True)
class StoredClientSummary:
    id: int
    client_id: str
    version: int
    client_version: int
    thread_summary_ids: list[int]
    inputs_hash: str
    schema_version: int
    content: dict[str, Any]
    model: str
    prompt_tokens: int
    completion_tokens: int
    created_at: datetime


_THREAD_COLUMNS = (
    "id, client_id, thread_id, version, from_seq, through_seq, schema_version, content, model,"
    " prompt_tokens, completion_tokens, created_at"
)
_CLIENT_COLUMNS = (
    "id, client_id, version, client_version, thread_summary_ids, inputs_hash, schema_version, content, model,"
    " prompt_tokens, completion_tokens, created_at"
)


async def latest_thread(
    pool: asyncpg.Pool, client_id: str, thread_id: str, schema_version: int | None = None
) -> StoredThreadSummary | None:
    """The thread's newest summary (of ``schema_version`` when given), or None."""
    row = await pool.fetchrow(
        f"SELECT {_THREAD_COLUMNS} FROM thread_summaries WHERE client_id = $1 AND thread_id = $2"
        " AND ($3::int IS NULL OR schema_version = $3) ORDER BY version DESC LIMIT 1",
        client_id,
        thread_id,
        schema_version,
    )
    return StoredThreadSummary(**dict(row)) if row else None


async def store_thread(
    pool: asyncpg.Pool,
    *,
    client_id: str,
    thread_id: str,
    from_seq: int,
    through_seq: int,
    schema_version: int,
    prompt_version: int,
    content: dict[str, Any],
    model: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> StoredThreadSummary:
    """Store the thread's next summary version; a second store for the same messages (a retried
    activity) returns the first."""
    async with pool.acquire() as conn, conn.transaction():
        # Versions are numbered under the thread's row lock.
        await conn.execute(
            "SELECT 1 FROM message_threads WHERE client_id = $1 AND thread_id = $2 FOR UPDATE", client_id, thread_id
        )
        row = await conn.fetchrow(
            f"""INSERT INTO thread_summaries (client_id, thread_id, version, from_seq, through_seq, schema_version,
                    prompt_version, content, model, prompt_tokens, completion_tokens)
                VALUES ($1, $2, (SELECT coalesce(max(version), 0) + 1 FROM thread_summaries
                                 WHERE client_id = $1 AND thread_id = $2),
                        $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (client_id, thread_id, through_seq, schema_version) DO NOTHING
                RETURNING {_THREAD_COLUMNS}""",
            client_id,
            thread_id,
            from_seq,
            through_seq,
            schema_version,
            prompt_version,
            content,
            model,
            prompt_tokens,
            completion_tokens,
        )
        if row is None:
            row = await conn.fetchrow(
                f"SELECT {_THREAD_COLUMNS} FROM thread_summaries WHERE client_id = $1 AND thread_id = $2"
                " AND through_seq = $3 AND schema_version = $4",
                client_id,
                thread_id,
                through_seq,
                schema_version,
            )
    return StoredThreadSummary(**dict(row))


async def latest_threads(pool: asyncpg.Pool, client_id: str, schema_version: int) -> list[StoredThreadSummary]:
    """The newest summary of each of the client's summarised threads, by thread id."""
    rows = await pool.fetch(
        f"""SELECT DISTINCT ON (thread_id) {_THREAD_COLUMNS} FROM thread_summaries
            WHERE client_id = $1 AND schema_version = $2 ORDER BY thread_id, version DESC""",
        client_id,
        schema_version,
    )
    return [StoredThreadSummary(**dict(r)) for r in rows]


async def latest_client(pool: asyncpg.Pool, client_id: str) -> StoredClientSummary | None:
    row = await pool.fetchrow(
        f"SELECT {_CLIENT_COLUMNS} FROM client_summaries WHERE client_id = $1 ORDER BY version DESC LIMIT 1",
        client_id,
    )
    return StoredClientSummary(**dict(row)) if row else None


async def store_client(
    pool: asyncpg.Pool,
    *,
    client_id: str,
    client_version: int,
    thread_summary_ids: list[int],
    inputs_hash: str,
    schema_version: int,
    prompt_version: int,
    content: dict[str, Any],
    model: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> StoredClientSummary:
    """Store the client's next summary version (the caller checks the latest version's
    ``inputs_hash`` first, so a retried activity does not store twice)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM clients WHERE id = $1 FOR UPDATE", client_id)
        row = await conn.fetchrow(
            f"""INSERT INTO client_summaries (client_id, version, client_version, thread_summary_ids, inputs_hash,
                    schema_version, prompt_version, content, model, prompt_tokens, completion_tokens)
                VALUES ($1, (SELECT coalesce(max(version), 0) + 1 FROM client_summaries WHERE client_id = $1),
                        $2, $3, $4, $5, $6, $7, $8, $9, $10)
                RETURNING {_CLIENT_COLUMNS}""",
            client_id,
            client_version,
            thread_summary_ids,
            inputs_hash,
            schema_version,
            prompt_version,
            content,
            model,
            prompt_tokens,
            completion_tokens,
        )
    return StoredClientSummary(**dict(row))
