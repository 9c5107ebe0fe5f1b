"""The asyncpg pool and the versioned SQL migrations applied at start."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x57A7E_0001


# What storage functions take: the pool, or a connection whose transaction the call joins.
DB = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


@contextlib.asynccontextmanager
async def connection(db: DB) -> AsyncIterator[asyncpg.Connection | PoolConnectionProxy]:
    """A connection from the pool, or the connection given (so a caller's transaction spans the call)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


@contextlib.asynccontextmanager
async def transaction(db: DB) -> AsyncIterator[asyncpg.Connection | PoolConnectionProxy]:
    """A transaction of its own, or, given a connection already in one, the caller's (no
    savepoint: two round trips saved on the webhook's path; the caller commits or rolls back)."""
    async with connection(db) as conn:
        if conn.is_in_transaction():
            yield conn
        else:
            async with conn.transaction():
                yield conn


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, not strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations, each in its own transaction; safe to run concurrently."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY, name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in _migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
                applied.append(name)
                log.info("applied migration %s", name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def connect(dsn: str, **kwargs: int) -> asyncpg.Pool:
    """A pool on a migrated database."""
    pool = await create_pool(dsn, **kwargs)
    await migrate(pool)
    return pool
