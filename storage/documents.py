"""Document versions: an ordered list of section ids plus the rendered Markdown."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domain.reviews import ReviewRefused, ReviewSource, ReviewState
from storage import sections
from storage.db import DB, transaction


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
    # Which document of its kind: the kind itself for a business plan, the document's catalogue
    # key for a deliverable (five a month, versioned each on its own).
    document_key: str = ""
    review_state: str = ReviewState.DRAFT.value
    reviewed_at: datetime | None = None
    reviewed_by: str | None = None
    review_note: str | None = None

    def review(self) -> dict[str, Any]:
        """The review as JSON: state, and who set it when (null for a draft never reviewed)."""
        return {
            "state": self.review_state,
            "by": self.reviewed_by,
            "at": self.reviewed_at.isoformat() if self.reviewed_at else None,
            "note": self.review_note,
        }


_COLUMNS = (
    "id, client_id, kind, version, level, client_version, workflow_id, section_ids, markdown, created_at, changes,"
    " document_key, review_state, reviewed_at, reviewed_by, review_note"
)


async def store(
    pool: DB,
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
    document_key: str | None = None,
) -> StoredDocument:
    """Store the next version of the document (``document_key``, default: the kind itself);
    idempotent per workflow run and document (a retried activity stores once)."""
    key = document_key or kind
    async with transaction(pool) as conn:
        existing = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM documents WHERE workflow_id=$1 AND run_id=$2 AND document_key=$3",
            workflow_id,
            run_id,
            key,
        )
        if existing:
            return StoredDocument(**dict(existing))
        # Serialise version numbering per client, kind and document.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{client_id}/{kind}/{key}")
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM documents WHERE client_id=$1 AND kind=$2 AND document_key=$3",
            client_id,
            kind,
            key,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO documents (client_id, kind, version, level, client_version,
                                       workflow_id, run_id, section_ids, markdown, changes, document_key)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}""",
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
            key,
        )
        return StoredDocument(**dict(row))


async def latest(
    pool: asyncpg.Pool,
    client_id: str,
    kind: str,
    *,
    excluding_run: tuple[str, str] | None = None,
    document_key: str | None = None,
) -> StoredDocument | None:
    """The newest version of the document (``document_key``, default: the kind itself), or the
    newest not stored by ``excluding_run`` (workflow id, run id)."""
    workflow_id, run_id = excluding_run or ("", "")
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE client_id=$1 AND kind=$2 AND document_key=$5"
        " AND NOT (workflow_id = $3 AND run_id IS NOT DISTINCT FROM $4)"
        " ORDER BY version DESC LIMIT 1",
        client_id,
        kind,
        workflow_id,
        run_id,
        document_key or kind,
    )
    return StoredDocument(**dict(row)) if row else None


async def latest_shape(db: DB, client_id: str, kind: str) -> tuple[str | None, list[str]] | None:
    """The level and section keys of the newest version of the client's ``kind`` document (the
    kind itself, e.g. the business plan), or None if it has none yet."""
    row = await db.fetchrow(
        "SELECT d.level, array(SELECT s.section_key FROM sections s WHERE s.id = ANY(d.section_ids)) AS keys"
        " FROM documents d WHERE d.client_id = $1 AND d.kind = $2 AND d.document_key = $2"
        " ORDER BY d.version DESC LIMIT 1",
        client_id,
        kind,
    )
    return (row["level"], list(row["keys"])) if row else None


async def get(pool: asyncpg.Pool, document_id: int) -> StoredDocument | None:
    """One stored document version by its id."""
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM documents WHERE id = $1", document_id)
    return StoredDocument(**dict(row)) if row else None


async def list_for_client(pool: asyncpg.Pool, client_id: str) -> list[dict[str, Any]]:
    """Every document version of the client, without its text: newest first per document."""
    rows = await pool.fetch(
        """SELECT id, kind, document_key, version, level, client_version, workflow_id, created_at, review_state
           FROM documents WHERE client_id = $1 ORDER BY kind, document_key, version DESC""",
        client_id,
    )
    return [dict(r) | {"created_at": r["created_at"].isoformat()} for r in rows]


async def as_json(pool: asyncpg.Pool, doc: StoredDocument) -> dict[str, Any]:
    """The document with its sections' structured content (what ``--format json`` prints)."""
    stored = await sections.get_many(pool, doc.section_ids)
    return {
        "id": doc.id,
        "client_id": doc.client_id,
        "kind": doc.kind,
        "document_key": doc.document_key,
        "version": doc.version,
        "level": doc.level,
        "client_version": doc.client_version,
        "workflow_id": doc.workflow_id,
        "created_at": doc.created_at.isoformat(),
        "changes": doc.changes,
        "review": doc.review(),
        "sections": [
            {"key": stored[i].section_key, "model": stored[i].model, "content": stored[i].content}
            for i in doc.section_ids
        ],
    }


async def review_overview(db: DB, limit: int = 20) -> dict[str, Any]:
    """The newest version of every document by review state (counts), and the newest ones still
    waiting on a reviewer (draft or changes requested), newest first."""
    latest = """SELECT DISTINCT ON (client_id, kind, document_key) id, client_id, kind, document_key, version,
                       review_state, reviewed_by, reviewed_at, created_at
                FROM documents ORDER BY client_id, kind, document_key, version DESC"""
    counts = await db.fetch(f"SELECT review_state, count(*) AS n FROM ({latest}) l GROUP BY review_state")
    waiting = await db.fetch(
        f"SELECT * FROM ({latest}) l WHERE review_state <> 'approved' ORDER BY created_at DESC LIMIT $1", limit
    )
    return {
        "counts": {state.value: 0 for state in ReviewState} | {r["review_state"]: r["n"] for r in counts},
        "waiting": [
            dict(r)
            | {
                "created_at": r["created_at"].isoformat(),
                "reviewed_at": r["reviewed_at"].isoformat() if r["reviewed_at"] else None,
            }
            for r in waiting
        ],
    }


async def version_of(db: DB, client_id: str, kind: str, document_key: str, version: int) -> StoredDocument | None:
    """One version of the client's document, or None."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE client_id=$1 AND kind=$2 AND document_key=$3 AND version=$4",
        client_id,
        kind,
        document_key,
        version,
    )
    return StoredDocument(**dict(row)) if row else None


async def set_review(
    db: DB, document_id: int, state: ReviewState, *, by: str | None, note: str | None, source: ReviewSource
) -> StoredDocument:
    """Set the review state of one document version and log it. Only the newest version of its
    document can be reviewed (ReviewRefused for a superseded one, naming the newest); the check
    and the change hold the lock new versions are numbered under, so a version stored meanwhile
    cannot slip between them. Setting the state a version already has changes nothing."""
    async with transaction(db) as conn:
        doc = await conn.fetchrow(f"SELECT {_COLUMNS} FROM documents WHERE id = $1", document_id)
        if doc is None:
            raise LookupError(f"no document {document_id}")
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"{doc['client_id']}/{doc['kind']}/{doc['document_key']}"
        )
        newest = await conn.fetchval(
            "SELECT max(version) FROM documents WHERE client_id=$1 AND kind=$2 AND document_key=$3",
            doc["client_id"],
            doc["kind"],
            doc["document_key"],
        )
        if newest != doc["version"]:
            raise ReviewRefused(
                f"{doc['document_key']} v{doc['version']} of client {doc['client_id']} is superseded by v{newest}; "
                f"review v{newest} instead (nothing changed)"
            )
        if doc["review_state"] == state.value:
            return StoredDocument(**dict(doc))
        row = await conn.fetchrow(
            f"""UPDATE documents SET review_state = $2, reviewed_at = now(), reviewed_by = $3, review_note = $4
                WHERE id = $1 RETURNING {_COLUMNS}""",
            document_id,
            state.value,
            by,
            note,
        )
        await conn.execute(
            "INSERT INTO document_reviews (document_id, state, reviewed_by, note, source) VALUES ($1, $2, $3, $4, $5)",
            document_id,
            state.value,
            by,
            note,
            source.value,
        )
        return StoredDocument(**dict(row))


async def store_digest(pool: asyncpg.Pool, *, client_id: str, month: int, text: str) -> str:
    """Store a deliverable month's digest of earlier months once; returns its key (claim check)."""
    key = hashlib.sha256(f"{client_id}|m{month}|{text}".encode()).hexdigest()
    await pool.execute(
        "INSERT INTO deliverable_digests (key, client_id, month, text) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (key) DO NOTHING",
        key,
        client_id,
        month,
        text,
    )
    return key


async def digest_text(pool: asyncpg.Pool, key: str) -> str | None:
    return await pool.fetchval("SELECT text FROM deliverable_digests WHERE key = $1", key)
