"""Bulk request sets: the sections a bulk regeneration submits as one Batch API batch, and the
batch's state. The workflow carries only the set's reference."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

# A line's state: waiting for its answer, stored as a section, or failed (written directly instead).
ItemState = Literal["pending", "stored", "failed"]


@dataclass(frozen=True)
class BulkItem:
    custom_id: str
    client_id: str
    client_version: int
    section_key: str
    document_sections: list[str]
    model: str
    body: dict[str, Any]
    # Which catalogue the section key belongs to, and the stored context it reads (see
    # contracts.models.SectionRequest): a deliverable month's lines carry both.
    document_kind: str = "business_plan"
    context_ref: str | None = None
    state: ItemState = "pending"
    section_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class BulkRequestRow:
    ref: str
    workflow_id: str
    document_kind: str
    level: str
    mode: str
    batch_id: str | None
    input_file_id: str | None
    batch_status: str | None
    output_file_id: str | None
    error_file_id: str | None


class UnknownBulkRequest(LookupError):
    pass


async def create(
    pool: asyncpg.Pool,
    *,
    ref: str,
    workflow_id: str,
    document_kind: str,
    level: str,
    mode: str,
    items: list[BulkItem],
) -> None:
    """Store the request set once: a retried prepare finds it there and changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO bulk_requests (ref, workflow_id, document_kind, level, mode)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ref) DO NOTHING RETURNING true""",
            ref,
            workflow_id,
            document_kind,
            level,
            mode,
        )
        if not inserted:
            return
        await conn.executemany(
            """INSERT INTO bulk_items (ref, custom_id, client_id, client_version, section_key,
                                       document_sections, model, body, document_kind, context_ref)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING""",
            [
                (
                    ref,
                    i.custom_id,
                    i.client_id,
                    i.client_version,
                    i.section_key,
                    i.document_sections,
                    i.model,
                    json.dumps(i.body, ensure_ascii=False),
                    i.document_kind,
                    i.context_ref,
                )
                for i in items
            ],
        )


_REQUEST_COLUMNS = (
    "ref, workflow_id, document_kind, level, mode, batch_id, input_file_id, batch_status, output_file_id, error_file_id"
)


async def get(db: Any, ref: str, *, for_update: bool = False) -> BulkRequestRow:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(f"SELECT {_REQUEST_COLUMNS} FROM bulk_requests WHERE ref = $1{lock}", ref)
    if row is None:
        raise UnknownBulkRequest(f"no bulk request set {ref!r}")
    return BulkRequestRow(**dict(row))


@contextlib.asynccontextmanager
async def locked(pool: asyncpg.Pool, ref: str) -> AsyncIterator[tuple[asyncpg.Connection, BulkRequestRow]]:
    """The request set's row, locked for the transaction: one submitter at a time."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn, await get(conn, ref, for_update=True)


async def items(db: Any, ref: str, *, states: tuple[ItemState, ...] | None = None) -> list[BulkItem]:
    rows = await db.fetch(
        """SELECT custom_id, client_id, client_version, section_key, document_sections, model, body,
                  document_kind, context_ref, state, section_id, error
           FROM bulk_items WHERE ref = $1 AND ($2::text[] IS NULL OR state = ANY($2::text[]))
           ORDER BY client_id, custom_id""",
        ref,
        list(states) if states is not None else None,
    )
    return [BulkItem(**{**dict(r), "body": json.loads(r["body"])}) for r in rows]


async def set_batch(db: Any, ref: str, *, batch_id: str, input_file_id: str, status: str) -> None:
    await db.execute(
        "UPDATE bulk_requests SET batch_id = $2, input_file_id = $3, batch_status = $4 WHERE ref = $1",
        ref,
        batch_id,
        input_file_id,
        status,
    )


async def set_status(
    pool: asyncpg.Pool, ref: str, *, status: str, output_file_id: str | None, error_file_id: str | None
) -> None:
    await pool.execute(
        """UPDATE bulk_requests SET batch_status = $2, output_file_id = $3, error_file_id = $4
           WHERE ref = $1""",
        ref,
        status,
        output_file_id,
        error_file_id,
    )


async def mark(
    pool: asyncpg.Pool,
    ref: str,
    custom_id: str,
    *,
    state: ItemState,
    section_id: int | None = None,
    error: str | None = None,
) -> None:
    await pool.execute(
        "UPDATE bulk_items SET state = $3, section_id = $4, error = $5 WHERE ref = $1 AND custom_id = $2",
        ref,
        custom_id,
        state,
        section_id,
        error,
    )


async def mark_collected(pool: asyncpg.Pool, ref: str) -> None:
    await pool.execute("UPDATE bulk_requests SET collected_at = now() WHERE ref = $1", ref)
