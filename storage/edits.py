"""Section locks and proposals: operator edits that stick (see migration 0015)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import DB


@dataclass(frozen=True)
class Lock:
    section_key: str
    section_id: int
    base_section_id: int | None


@dataclass(frozen=True)
class Proposal:
    id: int
    client_id: str
    document_kind: str
    document_key: str
    section_key: str
    locked_section_id: int
    proposed_section_id: int
    state: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None


_PROPOSAL = (
    "id, client_id, document_kind, document_key, section_key, locked_section_id, proposed_section_id, state,"
    " created_at, decided_at, decided_by"
)


async def lock(
    db: DB,
    client_id: str,
    kind: str,
    document_key: str,
    section_key: str,
    section_id: int,
    base: int | None,
    by: str | None,
) -> None:
    """Lock the section to ``section_id`` (an edit of a locked section keeps its first base)."""
    await db.execute(
        """INSERT INTO section_locks (client_id, document_kind, document_key, section_key, section_id,
                                      base_section_id, locked_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (client_id, document_kind, document_key, section_key)
           DO UPDATE SET section_id = EXCLUDED.section_id, locked_by = EXCLUDED.locked_by, locked_at = now()""",
        client_id,
        kind,
        document_key,
        section_key,
        section_id,
        base,
        by,
    )


async def unlock(db: DB, client_id: str, kind: str, document_key: str, section_key: str) -> None:
    await db.execute(
        "DELETE FROM section_locks WHERE client_id=$1 AND document_kind=$2 AND document_key=$3 AND section_key=$4",
        client_id,
        kind,
        document_key,
        section_key,
    )


async def locks(db: DB, client_id: str, kind: str, document_key: str) -> dict[str, Lock]:
    rows = await db.fetch(
        "SELECT section_key, section_id, base_section_id FROM section_locks"
        " WHERE client_id=$1 AND document_kind=$2 AND document_key=$3",
        client_id,
        kind,
        document_key,
    )
    return {r["section_key"]: Lock(**dict(r)) for r in rows}


async def propose(
    db: DB, client_id: str, kind: str, document_key: str, section_key: str, locked_id: int, proposed_id: int
) -> None:
    await db.execute(
        """INSERT INTO section_proposals (client_id, document_kind, document_key, section_key,
                                          locked_section_id, proposed_section_id)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (client_id, document_kind, document_key, section_key, proposed_section_id) DO NOTHING""",
        client_id,
        kind,
        document_key,
        section_key,
        locked_id,
        proposed_id,
    )


async def proposals(db: DB, client_id: str, *, state: str | None = "pending") -> list[Proposal]:
    rows = await db.fetch(
        f"SELECT {_PROPOSAL} FROM section_proposals WHERE client_id = $1 AND ($2::text IS NULL OR state = $2)"
        " ORDER BY id",
        client_id,
        state,
    )
    return [Proposal(**dict(r)) for r in rows]


async def proposal(db: DB, proposal_id: int) -> Proposal | None:
    row = await db.fetchrow(f"SELECT {_PROPOSAL} FROM section_proposals WHERE id = $1 FOR UPDATE", proposal_id)
    return Proposal(**dict(row)) if row else None


async def decide(db: DB, proposal_id: int, state: str, by: str | None) -> None:
    await db.execute(
        "UPDATE section_proposals SET state = $2, decided_at = now(), decided_by = $3 WHERE id = $1",
        proposal_id,
        state,
        by,
    )
