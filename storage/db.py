"""The asyncpg pool and the versioned SQL migrations applied at start."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x57A7E_0001


# What storage functions take: the pool, or a connection whose transaction the call joins.
DB: TypeAlias = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


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


@contextlib.asynccontextmanager
async def session_lock(
    pool: asyncpg.Pool, *keys: str | int, wait: float | None = None
) -> AsyncIterator[PoolConnectionProxy]:
    """A connection holding session advisory locks on ``keys`` (text keys hashed, integers as
    they are), taken in the order given (sort them so two holders cannot deadlock) and released
    in reverse on exit, whatever the exit. If a lock cannot be released, the connection is
    closed, which ends its session and every lock with it: a connection never goes back to the
    pool holding a lock (the pool does not reset released connections, ``_release_as_is``).
    ``wait`` (seconds) bounds the wait for each lock (``TimeoutError``)."""
    async with pool.acquire() as conn:
        taken: list[str | int] = []
        try:
            for key in keys:
                await conn.execute(f"SELECT pg_advisory_lock({_lock_id(key)})", key, timeout=wait)
                taken.append(key)
            yield conn
        finally:
            try:
                for key in reversed(taken):
                    await conn.execute(f"SELECT pg_advisory_unlock({_lock_id(key)})", key)
            except BaseException as err:
                log.warning("advisory unlock failed (%s); closing the connection instead", type(err).__name__)
                conn.terminate()
                if not isinstance(err, Exception):
                    raise


def _lock_id(key: str | int) -> str:
    return "$1::bigint" if isinstance(key, int) else "hashtextextended($1, 0)"


async def _release_as_is(conn: asyncpg.Connection) -> None:
    """A released connection goes back to the pool as it is. asyncpg has already rolled back any
    open transaction; our code leaves no other session state (no SET, LISTEN or cursor outside a
    transaction, and the holders of session advisory locks, ``session_lock``, unlock them or
    close the connection). asyncpg's default reset (unlock all, close all, unlisten, reset all)
    would cost every query a second round trip."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_release_as_is
    )
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
    async with session_lock(pool, _MIGRATION_LOCK) as conn:
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
    return applied


async def connect(dsn: str, **kwargs: int) -> asyncpg.Pool:
    """A pool on a migrated database."""
    pool = await create_pool(dsn, **kwargs)
    await migrate(pool)
    return pool
