"""Erasing a client's data from Postgres, in one transaction.

Removed: the client's snapshots (every personal field), message threads and their messages,
thread and client summaries, sections, documents and their reviews (unless under legal hold),
digests, cached answers and their embeddings, bulk request lines (prompts), pending workflow
starts and CRM notifications, the client's budgets. Kept under an anonymous id: the usage
ledger's figures (tokens, dollars, savings) and budget reservations; error messages in the
ledger are dropped (they may quote what a model wrote). Elsewhere the client id itself is
replaced by the anonymous id (webhook answers, alert messages).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from storage.db import DB, transaction

# How long an erased client's id is kept so that work in flight lands under its anonymous id:
# longer than a section activity's start-to-close (15 minutes) with room to spare.
TOMBSTONE_HOURS = 1.0


@dataclass(frozen=True)
class Erased:
    anon_id: str
    legal_hold: bool
    # table -> rows removed or anonymised
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def _count(status: str) -> int:
    # asyncpg's status string: "DELETE 3", "UPDATE 2".
    return int(status.rsplit(" ", 1)[-1])


async def erase(db: DB, client_id: str, workflow_ids: list[str], *, legal_hold: bool, reason: str) -> Erased:
    """Erase ``client_id``'s data; ``workflow_ids`` are the ids its workflows run under (they
    carry the client id). Nothing to erase (an unknown or already erased client): an Erased with
    no rows, and nothing recorded."""
    anon = f"erased-{secrets.token_hex(8)}"
    removed: dict[str, int] = {}
    async with transaction(db) as conn:
        # Serialise with a concurrent update of the same client (intake locks this row too).
        await conn.execute("SELECT 1 FROM clients WHERE id = $1 FOR UPDATE", client_id)

        async def run(label: str, sql: str, *args: Any) -> None:
            n = _count(await conn.execute(sql, *args))
            if n:
                removed[label] = removed.get(label, 0) + n

        await run("client_snapshots", "DELETE FROM client_snapshots WHERE client_id = $1", client_id)
        await run("message_threads", "DELETE FROM message_threads WHERE client_id = $1", client_id)
        # Messages and thread summaries go with their threads (ON DELETE CASCADE); any left over:
        await run("thread_messages", "DELETE FROM thread_messages WHERE client_id = $1", client_id)
        await run("thread_summaries", "DELETE FROM thread_summaries WHERE client_id = $1", client_id)
        await run("client_summaries", "DELETE FROM client_summaries WHERE client_id = $1", client_id)
        await run("deliverable_digests", "DELETE FROM deliverable_digests WHERE client_id = $1", client_id)
        await run("cache_entries", "DELETE FROM cache_entries WHERE client_id = $1", client_id)
        await run("bulk_items", "DELETE FROM bulk_items WHERE client_id = $1", client_id)
        await run("bulk_budget_holds", "DELETE FROM bulk_budget_holds WHERE client_id = $1", client_id)
        await run("crm_notifications", "DELETE FROM crm_notifications WHERE client_id = $1", client_id)
        await run(
            "workflow_starts",
            "DELETE FROM workflow_starts WHERE workflow_id = ANY($2) OR request->>'client_id' = $1"
            " OR request->'request'->>'client_id' = $1",
            client_id,
            workflow_ids,
        )
        await run("budgets", "DELETE FROM budgets WHERE scope = 'client' AND client_id = $1", client_id)
        if legal_hold:
            # Documents stay whole, with the sections they are made of; other sections go.
            await run(
                "sections",
                "DELETE FROM sections s WHERE s.client_id = $1 AND NOT EXISTS"
                " (SELECT 1 FROM documents d WHERE d.client_id = $1 AND s.id = ANY(d.section_ids))",
                client_id,
            )
            await run(
                "clients",
                "UPDATE clients SET status = 'ERASED', erased_at = now(), current_version = 0 WHERE id = $1",
                client_id,
            )
        else:
            await run("documents", "DELETE FROM documents WHERE client_id = $1", client_id)
            await run("sections", "DELETE FROM sections WHERE client_id = $1", client_id)
            await run("clients", "DELETE FROM clients WHERE id = $1", client_id)

        # What is kept, under the anonymous id.
        await run(
            "usage_ledger",
            "UPDATE usage_ledger SET client_id = $2, workflow_id = replace(workflow_id, $1, $2), error_message = NULL"
            " WHERE client_id = $1 OR workflow_id = ANY($3)",
            client_id,
            anon,
            workflow_ids,
        )
        await run(
            "budget_reservations", "UPDATE budget_reservations SET client_id = $2 WHERE client_id = $1", client_id, anon
        )
        await run(
            "webhook_deliveries",
            "UPDATE webhook_deliveries SET response = replace(response::text, $1, $2)::jsonb"
            " WHERE strpos(response::text, $1) > 0",
            client_id,
            anon,
        )
        await run(
            "alerts",
            "UPDATE alerts SET message = replace(message, $1, $2) WHERE strpos(message, $1) > 0",
            client_id,
            anon,
        )
        if removed:
            await conn.execute(
                "INSERT INTO erased_clients (client_id, anon_id) VALUES ($1, $2)"
                " ON CONFLICT (client_id) DO UPDATE SET anon_id = EXCLUDED.anon_id, erased_at = now()",
                client_id,
                anon,
            )
            await conn.execute(
                "INSERT INTO client_erasures (anon_id, legal_hold, reason, removed) VALUES ($1, $2, $3, $4)",
                anon,
                legal_hold,
                reason,
                removed,
            )
    return Erased(anon, legal_hold, removed)


async def purge_tombstones(db: DB, older_than_hours: float = TOMBSTONE_HOURS) -> int:
    """Forget the client ids of erasures older than this (see migration 0014)."""
    return _count(
        await db.execute(
            "DELETE FROM erased_clients WHERE erased_at < now() - make_interval(secs => $1)", older_than_hours * 3600
        )
    )


async def archived_before(db: DB, days: float) -> list[str]:
    """Clients archived (``client.archived``) more than ``days`` ago and not erased yet."""
    rows = await db.fetch(
        "SELECT id FROM clients WHERE archived_at < now() - make_interval(secs => $1) AND erased_at IS NULL"
        " ORDER BY archived_at",
        days * 86400,
    )
    return [r["id"] for r in rows]


async def mark_archived(db: DB, client_id: str, archived: bool) -> None:
    """Record that the CRM archived (or re-activated) the client: the retention period's start."""
    await db.execute(
        "UPDATE clients SET archived_at = CASE WHEN $2 THEN coalesce(archived_at, now()) END WHERE id = $1",
        client_id,
        archived,
    )
