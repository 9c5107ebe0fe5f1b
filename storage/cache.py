"""The answer cache: exact and template entries by key, exact entries by embedding similarity.

Every function takes a pool or a connection (``DB``). Inside :func:`single_flight`, pass the
connection it yields, so a caller holding the lock never waits for a second pool connection.

SQL is written so that no connection codec is needed: jsonb goes in and out as text and vectors
go in as text literals (``$n::text::vector``), so any asyncpg connection works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage import usage
from storage.db import DB, connection, session_lock, transaction

log = logging.getLogger(__name__)

Tier = Literal["exact", "template"]
EMBEDDING_DIM = 256
# Candidates fetched by the index before the closest one is picked: with the relaxed iterative
# HNSW scan, results come slightly out of order, so we over-fetch and re-sort.
SIMILAR_CANDIDATES = 10


@dataclass(frozen=True)
class CacheEntry:
    """One cached answer: its ``cache_entries`` row but the embedding, with its ``cache_usage``
    (``last_used_at``, ``hits``)."""

    key: str
    tier: str
    client_id: str | None
    document_kind: str
    section_key: str
    schema_version: int
    prompt_version: int
    section_id: int | None
    content: dict[str, Any]
    inputs: dict[str, Any]
    model: str
    completion_tokens: int
    cost: Decimal
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime
    hits: int
    # Out of date after a client update: never served as is, only revised (see invalidate).
    stale: bool = False


# The cache_entries columns of a CacheEntry, read through alias ``e``.
_E_COLUMNS = (
    "e.key, e.tier, e.client_id, e.document_kind, e.section_key, e.schema_version, e.prompt_version,"
    " e.section_id, e.content::text AS content, e.inputs::text AS inputs, e.model, e.completion_tokens,"
    " e.cost, e.created_at, e.expires_at, e.stale"
)


def _entry(row: asyncpg.Record) -> CacheEntry:
    data = {k: row[k] for k in CacheEntry.__dataclass_fields__}
    data["content"] = json.loads(data["content"])
    data["inputs"] = json.loads(data["inputs"])
    return CacheEntry(**data)


def _vector(embedding: Sequence[float]) -> str:
    """The pgvector text literal of ``embedding`` (checked: 256 finite numbers)."""
    if len(embedding) != EMBEDDING_DIM:
        raise ValueError(f"embedding has {len(embedding)} dimensions, expected {EMBEDDING_DIM}")
    values = [float(x) for x in embedding]
    if not all(math.isfinite(x) for x in values):
        raise ValueError("embedding has a NaN or infinite component")
    return "[" + ",".join(map(repr, values)) + "]"


# -- exact lookups ----------------------------------------------------------------------------
# One round trip: a live, current entry is read and its usage touched (a hit needs both: an
# entry evicted meanwhile takes its usage row with it, and misses); a stale one (another schema
# version, or content that is not a JSON object) is deleted. Only cache_usage is updated on a
# hit, so the HNSW index never sees it.
_GET_EXACT = f"""
WITH e AS (
    SELECT {_E_COLUMNS} FROM cache_entries e
    WHERE e.key = $1 AND e.schema_version = $2 AND e.expires_at > now() AND NOT e.stale
      AND jsonb_typeof(e.content) = 'object'
), touched AS (
    UPDATE cache_usage u SET hits = u.hits + 1, last_used_at = now()
    FROM e WHERE u.key = e.key
    RETURNING u.last_used_at, u.hits
), stale AS (
    DELETE FROM cache_entries
    WHERE key = $1 AND (schema_version <> $2 OR jsonb_typeof(content) <> 'object')
)
SELECT e.*, touched.* FROM e, touched
"""


async def get_exact(
    pool: DB,
    key: str,
    *,
    schema_version: int,
    validate: Callable[[dict[str, Any]], object] | None = None,
) -> CacheEntry | None:
    """The live entry under ``key`` for ``schema_version`` (its hits and last use updated), or None.

    Expired entries miss (``purge(expired_only=True)`` removes them). An entry of another schema
    version or with content that is not a JSON object is deleted, never served. ``validate``
    (e.g. a pydantic ``model_validate``) may check the content further: if it raises, the entry
    is deleted too and the lookup misses.
    """
    row = await pool.fetchrow(_GET_EXACT, key, schema_version)
    if row is None:
        return None
    entry = _entry(row)
    if validate is not None:
        try:
            validate(entry.content)
        except Exception as exc:  # noqa: BLE001 - any validation failure means "never serve it"
            log.warning("cache entry %s failed validation, deleted: %s", key, exc)
            await pool.execute("DELETE FROM cache_entries WHERE key = $1 AND created_at = $2", key, entry.created_at)
            return None
    return entry


async def has_live(pool: DB, key: str, *, schema_version: int) -> bool:
    """Whether :func:`get_exact` would find a live entry under ``key``, without touching it
    (a planning question: no hit is counted, nothing is deleted)."""
    return bool(
        await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM cache_entries WHERE key = $1 AND schema_version = $2
                              AND expires_at > now() AND NOT stale AND jsonb_typeof(content) = 'object')""",
            key,
            schema_version,
        )
    )


# -- writes -----------------------------------------------------------------------------------
# The entry and its usage row (reset: a replaced entry is a new answer) in one statement.
_PUT = """
WITH e AS (
    INSERT INTO cache_entries AS e (key, tier, client_id, document_kind, section_key, schema_version,
        prompt_version, section_id, content, inputs, model, completion_tokens, cost, embedding, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11, $12, $13,
            $14::text::vector, now() + $15::interval)
    ON CONFLICT (key) DO UPDATE SET
        tier = EXCLUDED.tier, client_id = EXCLUDED.client_id, document_kind = EXCLUDED.document_kind,
        section_key = EXCLUDED.section_key, schema_version = EXCLUDED.schema_version,
        prompt_version = EXCLUDED.prompt_version, section_id = EXCLUDED.section_id,
        content = EXCLUDED.content, inputs = EXCLUDED.inputs, model = EXCLUDED.model,
        completion_tokens = EXCLUDED.completion_tokens, cost = EXCLUDED.cost,
        embedding = EXCLUDED.embedding, expires_at = EXCLUDED.expires_at, created_at = now(), stale = false
    RETURNING e.key
)
INSERT INTO cache_usage (key) SELECT key FROM e
ON CONFLICT (key) DO UPDATE SET last_used_at = now(), hits = 0
"""

# The entry count comes from the counter the triggers keep (no count(*)); the victims are read
# off the cache_usage LRU index and deleted by primary key (arrays, so the planner never turns
# this into a join over the whole table): an eviction costs O(evicted rows).
# Lock order, to never deadlock: the 'entries' counter first (a put that only replaced a key
# has not locked it yet; the delete trigger would lock it after 'evictions'), so evictions run
# one at a time; then entry rows, skipping any a concurrent writer holds (a later put catches
# up), then their usage rows (by the cascade), then 'evictions'.
_EVICT = """
WITH victims AS (
    SELECT key FROM cache_entries
    WHERE key = ANY(ARRAY(
        SELECT key FROM cache_usage ORDER BY last_used_at
        LIMIT (SELECT greatest(value - $1, 0) FROM cache_counters WHERE name = 'entries' FOR UPDATE)
    ))
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM cache_entries WHERE key = ANY(ARRAY(SELECT key FROM victims)) RETURNING 1
), counted AS (
    UPDATE cache_counters SET value = value + (SELECT count(*) FROM gone)
    WHERE name = 'evictions' AND EXISTS (SELECT 1 FROM gone)
)
SELECT count(*) FROM gone
"""


async def put(
    pool: DB,
    *,
    key: str,
    tier: Tier,
    client_id: str | None,
    document_kind: str,
    section_key: str,
    schema_version: int,
    prompt_version: int,
    section_id: int | None,
    content: dict[str, Any],
    inputs: dict[str, Any],
    model: str,
    completion_tokens: int,
    cost: Decimal | float,
    ttl: timedelta,
    embedding: Sequence[float] | None,
    max_entries: int,
) -> int:
    """Store (or replace) the entry under ``key``, then evict least-recently-used entries beyond
    ``max_entries``. Returns how many were evicted (also added to the ``evictions`` counter)."""
    if tier not in ("exact", "template"):
        raise ValueError(f"unknown cache tier {tier!r}")
    if (tier == "template") != (client_id is None):
        raise ValueError("template entries have no client_id; exact entries must have one")
    if max_entries < 1:
        raise ValueError("max_entries must be at least 1")
    async with connection(pool) as conn, conn.transaction():  # one commit, one WAL flush
        await conn.execute(
            _PUT,
            key,
            tier,
            client_id,
            document_kind,
            section_key,
            schema_version,
            prompt_version,
            section_id,
            json.dumps(content),
            json.dumps(inputs),
            model,
            completion_tokens,
            Decimal(str(cost)),
            None if embedding is None else _vector(embedding),
            ttl,
        )
        evicted = int(await conn.fetchval(_EVICT, max_entries))
    if evicted:
        # Debug: a full cache evicts on every store (counted in `cache stats` and /metrics).
        log.debug("cache: evicted %d least-recently-used entries (max %d)", evicted, max_entries)
    return evicted


# -- semantic lookups -------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """Whose earlier answers may stand in for a section: one client's answers to one section under
    the same prompt and schema versions and model. Never another client's, never a template."""

    client_id: str
    document_kind: str
    section_key: str
    schema_version: int
    prompt_version: int
    model: str

    def args(self) -> tuple[Any, ...]:
        return (
            self.client_id,
            self.document_kind,
            self.section_key,
            self.schema_version,
            self.prompt_version,
            self.model,
        )


# $1..$6 are a Scope's args.
_IN_SCOPE = """client_id = $1 AND document_kind = $2 AND section_key = $3 AND tier = 'exact'
      AND schema_version = $4 AND prompt_version = $5 AND model = $6 AND expires_at > now()"""


def _similar_sql(client_predicate: str = "client_id = $1") -> str:
    """The semantic lookup. ``client_predicate`` exists for the benchmark, which swaps in an
    expression the scope btree cannot serve, to time the HNSW path alone."""
    scope = _IN_SCOPE.replace("client_id = $1", client_predicate, 1)
    return f"""
WITH candidates AS MATERIALIZED (
    SELECT key, embedding <=> $7::text::vector AS distance
    FROM cache_entries
    WHERE {scope} AND embedding IS NOT NULL AND jsonb_typeof(content) = 'object'
    ORDER BY embedding <=> $7::text::vector
    LIMIT {SIMILAR_CANDIDATES}
), best AS (
    SELECT key, distance FROM candidates ORDER BY distance LIMIT 1
)
UPDATE cache_usage u SET hits = u.hits + 1, last_used_at = now()
FROM best b JOIN cache_entries e ON e.key = b.key
WHERE u.key = b.key AND 1 - b.distance >= $8
RETURNING {_E_COLUMNS}, u.last_used_at, u.hits, 1 - b.distance AS similarity
"""


_FIND_SIMILAR = _similar_sql()


async def find_similar(
    pool: DB, scope: Scope, *, embedding: Sequence[float], threshold: float
) -> tuple[CacheEntry, float] | None:
    """The live exact entry in ``scope`` closest to ``embedding`` by cosine similarity, with that
    similarity, when it is at least ``threshold`` (its hits and last use updated); else None.

    The planner picks the scope btree (exact, for the usual few entries per client and section)
    or the HNSW index; for the latter the iterative scan keeps reading the graph until the scope
    filter has matched, so a selective filter does not starve the index scan.
    """
    vector = _vector(embedding)
    async with connection(pool) as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        row = await conn.fetchrow(_FIND_SIMILAR, *scope.args(), vector, threshold)
    if row is None:
        return None
    return _entry(row), float(row["similarity"])


async def latest_in_scope(pool: DB, scope: Scope) -> CacheEntry | None:
    """The most recently written live entry in ``scope`` (the base a patch revises)."""
    row = await pool.fetchrow(
        f"""SELECT {_E_COLUMNS}, u.last_used_at, u.hits FROM cache_entries e JOIN cache_usage u USING (key)
            WHERE {_IN_SCOPE} AND jsonb_typeof(e.content) = 'object' ORDER BY e.created_at DESC LIMIT 1""",
        *scope.args(),
    )
    return _entry(row) if row is not None else None


async def candidates(pool: DB, scope: Scope) -> list[tuple[str, dict[str, Any], bool]]:
    """Live entries in ``scope`` a semantic lookup could find, stale ones included: (key, inputs,
    embedded?). Lets the caller skip embedding when there is nothing to compare with."""
    rows = await pool.fetch(
        f"SELECT key, inputs::text AS inputs, embedding IS NOT NULL AS embedded FROM cache_entries WHERE {_IN_SCOPE}",
        *scope.args(),
    )
    return [(r["key"], json.loads(r["inputs"]), r["embedded"]) for r in rows]


async def set_embedding(pool: DB, key: str, embedding: Sequence[float]) -> None:
    """Attach an embedding computed later (embeddings are made only when first compared)."""
    await pool.execute("UPDATE cache_entries SET embedding = $2::text::vector WHERE key = $1", key, _vector(embedding))


# -- invalidation and purges ------------------------------------------------------------------
async def invalidate(pool: DB, *, client_id: str, section_keys: Sequence[str]) -> int:
    """Mark ``client_id``'s entries for ``section_keys`` (of any document kind) stale; returns the count.

    A stale entry is never served again (exact lookups skip it), but the semantic tier may still
    use it as the base of a cheap revision. The caller decides which sections a changed field
    touches. Template entries are untouched.
    """
    if not section_keys:
        return 0
    # Rows a concurrent put holds are skipped, never waited for (a put locks its row and then the
    # counters, so waiting here could close a cycle). Skipping is safe: an entry's key includes
    # the inputs it was made from, so an old-input entry can never be an exact hit for new
    # inputs, and the semantic tier serves nothing as is whose section's fields changed.
    async with transaction(pool) as conn:
        status = await conn.execute(
            """UPDATE cache_entries SET stale = true WHERE key = ANY(ARRAY(
                   SELECT key FROM cache_entries
                   WHERE client_id = $1 AND section_key = ANY($2::text[]) AND NOT stale
                   FOR UPDATE SKIP LOCKED))""",
            client_id,
            list(section_keys),
        )
    return int(status.split()[-1])


async def purge(pool: DB, *, client_id: str | None = None, kind: str | None = None, expired_only: bool = False) -> int:
    """Delete entries matching every given filter (all entries when none is given); returns the count.

    ``kind`` is the document kind; ``expired_only`` keeps live entries.
    """
    where, args = ["true"], []
    if client_id is not None:
        args.append(client_id)
        where.append(f"client_id = ${len(args)}")
    if kind is not None:
        args.append(kind)
        where.append(f"document_kind = ${len(args)}")
    if expired_only:
        where.append("expires_at <= now()")
    status = await pool.execute(f"DELETE FROM cache_entries WHERE {' AND '.join(where)}", *args)
    return int(status.split()[-1])


# -- stats ------------------------------------------------------------------------------------
async def stats(pool: DB) -> dict[str, Any]:
    """What the cache holds and what it saved, JSON-friendly.

    ``entries``: counts by tier and document kind, expired (still stored), hits, evictions, and
    what those hits saved at generation price (``cost * hits``, ``completion_tokens * hits``).
    ``ledger``: from ``usage_ledger``, per ``cache_tier`` (NULL as ``none``) and in total: calls,
    hits (``cache_hit``), hit rate (hits / calls in that group; in the total, the overall rate),
    share of all calls, and saved tokens and dollars (baseline minus actual).
    """
    async with connection(pool) as conn:
        totals = await conn.fetchrow(
            """SELECT count(*) AS total,
                      count(*) FILTER (WHERE expires_at <= now()) AS expired,
                      count(*) FILTER (WHERE embedding IS NOT NULL) AS with_embedding,
                      coalesce(sum(u.hits), 0) AS hits,
                      coalesce(sum(e.cost * u.hits), 0) AS saved_cost,
                      coalesce(sum(e.completion_tokens::bigint * u.hits), 0) AS saved_completion_tokens
               FROM cache_entries e LEFT JOIN cache_usage u USING (key)"""
        )
        by_tier = await conn.fetch("SELECT tier AS k, count(*) AS n FROM cache_entries GROUP BY 1 ORDER BY 1")
        by_kind = await conn.fetch("SELECT document_kind AS k, count(*) AS n FROM cache_entries GROUP BY 1 ORDER BY 1")
        counters = await conn.fetch("SELECT name, value FROM cache_counters ORDER BY name")
        ledger = await conn.fetch(
            f"""SELECT coalesce(cache_tier, 'none') AS tier,
                       count(*) AS calls,
                       count(*) FILTER (WHERE {usage.HIT}) AS hits,
                       coalesce(sum(saved_tokens), 0) AS saved_tokens,
                       coalesce(sum(saved_cost), 0) AS saved_cost
                FROM usage_ledger
                -- One row per section or summary served (storage.usage defines reuse once).
                WHERE {usage.REQUEST}
                GROUP BY 1 ORDER BY 1"""
        )
    all_calls = sum(r["calls"] for r in ledger)

    def figures(calls: int, hits: int, saved_tokens: int, saved_cost: Decimal) -> dict[str, Any]:
        return {
            "calls": calls,
            "hits": hits,
            "hit_rate": round(hits / calls, 6) if calls else 0.0,
            "share_of_calls": round(calls / all_calls, 6) if all_calls else 0.0,
            "saved_tokens": int(saved_tokens),
            "saved_cost": float(saved_cost),
        }

    counter = {r["name"]: int(r["value"]) for r in counters}
    return {
        "entries": {
            "total": int(totals["total"]),
            "by_tier": {"exact": 0, "template": 0} | {r["k"]: int(r["n"]) for r in by_tier},
            "by_kind": {r["k"]: int(r["n"]) for r in by_kind},
            "expired": int(totals["expired"]),
            "with_embedding": int(totals["with_embedding"]),
            "hits": int(totals["hits"]),
            "evictions": counter.get("evictions", 0),
            "saved_cost_by_hits": float(totals["saved_cost"]),
            "saved_completion_tokens_by_hits": int(totals["saved_completion_tokens"]),
        },
        "counters": counter,
        "ledger": {
            "by_tier": {r["tier"]: figures(r["calls"], r["hits"], r["saved_tokens"], r["saved_cost"]) for r in ledger},
            "total": figures(
                all_calls,
                sum(r["hits"] for r in ledger),
                sum(r["saved_tokens"] for r in ledger),
                sum((r["saved_cost"] for r in ledger), Decimal(0)),
            ),
        },
    }


# -- single flight ----------------------------------------------------------------------------
def single_flight(
    pool: asyncpg.Pool, key: str, *, lock_timeout: float | None = None
) -> contextlib.AbstractAsyncContextManager[PoolConnectionProxy]:
    """Hold a session advisory lock on ``key`` so only one holder of the same key proceeds.

    A connection is taken from ``pool`` for the duration and yielded: use it for the cache calls
    inside (``async with single_flight(pool, key) as conn: await get_exact(conn, ...)``) so a
    holder never needs a second connection; otherwise the pool must have more connections than
    there can be concurrent holders and waiters, or they deadlock on the pool.

    ``lock_timeout`` (seconds) bounds the wait for the lock (``TimeoutError``). The lock is
    released on exit, whatever the exit (``storage.db.session_lock``).
    """
    return session_lock(pool, key, wait=lock_timeout)


def single_flight_many(
    pool: asyncpg.Pool, keys: Sequence[str], *, lock_timeout: float | None = None
) -> contextlib.AbstractAsyncContextManager[PoolConnectionProxy]:
    """:func:`single_flight` for several keys (a batch of sections) on one connection. Locks are
    taken in sorted order, so two holders of overlapping key sets cannot deadlock."""
    return session_lock(pool, *sorted(set(keys)), wait=lock_timeout)
