"""Accepting a client record: store the new snapshot and invalidate what it makes stale.

The one path by which client data enters (CLI import, the demo, benchmarks, and the CRM's
webhooks), so invalidation can never be forgotten.
"""

from __future__ import annotations

import logging

from domain.client import ClientRecord
from storage import cache, clients
from storage.clients import StoredClient
from storage.db import DB
from tokenopt.reads import all_section_keys_reading

log = logging.getLogger(__name__)


async def accept_client(db: DB, record: ClientRecord) -> tuple[StoredClient, bool]:
    """Upsert the record; on a new version, mark stale the cache entries of exactly the plan and
    deliverable sections whose prompts carry a changed field (tokenopt.reads), nothing more. Given
    a connection, both happen in its transaction."""
    stored, changed = await clients.upsert(db, record)
    if changed and stored.changed_fields:
        touched = all_section_keys_reading(stored.changed_fields)
        if touched:
            count = await cache.invalidate(db, client_id=record.id, section_keys=touched)
            log.info(
                "client %s v%d: %d cache entries of %d sections made stale",
                record.id,
                stored.version,
                count,
                len(touched),
            )
    return stored, changed
