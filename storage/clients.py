"""Client snapshots: each accepted record becomes a new version; nothing is overwritten."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.client import ClientRecord
from domain.limits import TRUSTED, quote
from storage.db import DB, transaction


@dataclass(frozen=True)
class StoredClient:
    record: ClientRecord
    version: int
    content_hash: str
    # Wire-format fields that differ from the previous version (empty for a first version).
    changed_fields: frozenset[str] = frozenset()


def diff_fields(old: dict, new: dict) -> frozenset[str]:
    return frozenset(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class UnknownClient(LookupError):
    def __init__(self, client_id: str, version: int | None = None):
        what = f"client {quote(client_id)}" + (f" version {version}" if version else "")
        super().__init__(f"{what} not found; import it first (wavelaunch clients import FILE)")
        self.client_id = client_id


async def upsert(db: DB, record: ClientRecord) -> tuple[StoredClient, bool]:
    """Store ``record`` as the client's next version unless it equals the current one.

    Returns the stored snapshot and whether a new version was written.
    """
    digest = record.content_hash()
    async with transaction(db) as conn:
        row = await conn.fetchrow("SELECT current_version FROM clients WHERE id = $1 FOR UPDATE", record.id)
        if row is not None:
            current = await conn.fetchrow(
                "SELECT version, content_hash, record FROM client_snapshots WHERE client_id=$1 AND version=$2",
                record.id,
                row["current_version"],
            )
            if current is not None and current["content_hash"] == digest:
                return StoredClient(record, current["version"], digest), False
            changed = diff_fields(current["record"], record.wire()) if current is not None else frozenset()
            version = row["current_version"] + 1
            await conn.execute(
                "UPDATE clients SET current_version=$2, status=$3, updated_at=now() WHERE id=$1",
                record.id,
                version,
                record.status.value,
            )
        else:
            version = 1
            changed = frozenset()
            await conn.execute(
                "INSERT INTO clients (id, current_version, status) VALUES ($1, 1, $2)",
                record.id,
                record.status.value,
            )
        await conn.execute(
            "INSERT INTO client_snapshots (client_id, version, record, content_hash) VALUES ($1, $2, $3, $4)",
            record.id,
            version,
            record.wire(),
            digest,
        )
        return StoredClient(record, version, digest, changed), True


async def get(pool: DB, client_id: str, version: int | None = None) -> StoredClient:
    """The client's snapshot at ``version`` (default: current); UnknownClient if absent."""
    if version is None:
        row = await pool.fetchrow(
            "SELECT s.record, s.version, s.content_hash FROM clients c"
            " JOIN client_snapshots s ON s.client_id = c.id AND s.version = c.current_version"
            " WHERE c.id = $1",
            client_id,
        )
    else:
        row = await pool.fetchrow(
            "SELECT record, version, content_hash FROM client_snapshots WHERE client_id = $1 AND version = $2",
            client_id,
            version,
        )
    if row is None:
        raise UnknownClient(client_id, version)
    return StoredClient(
        ClientRecord.model_validate(row["record"], context=TRUSTED), row["version"], row["content_hash"]
    )


async def current_for_update(conn: DB, client_id: str) -> StoredClient | None:
    """The client's current snapshot with its row locked until the caller's transaction ends
    (a merge of a partial update onto it), or None for a client not stored."""
    row = await conn.fetchrow(
        "SELECT s.record, s.version, s.content_hash FROM clients c"
        " JOIN client_snapshots s ON s.client_id = c.id AND s.version = c.current_version"
        " WHERE c.id = $1 FOR UPDATE OF c",
        client_id,
    )
    if row is None:
        return None
    return StoredClient(
        ClientRecord.model_validate(row["record"], context=TRUSTED), row["version"], row["content_hash"]
    )


async def list_ids(pool: asyncpg.Pool) -> list[str]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM clients ORDER BY id")]


async def active_ids(pool: asyncpg.Pool) -> list[str]:
    """Clients whose current record is ACTIVE (the CRM's status), in id order."""
    return [r["id"] for r in await pool.fetch("SELECT id FROM clients WHERE status = 'ACTIVE' ORDER BY id")]
