"""storage.cache on a real embedded Postgres with pgvector: lookups, expiry, eviction, tenant
isolation, invalidation, stats and the single-flight lock."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from storage import cache, sections, usage
from storage.usage import UsageRecord

pytestmark = pytest.mark.timeout(120)

DIM = cache.EMBEDDING_DIM
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
async def _empty(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE cache_entries, cache_usage, usage_ledger")
    await pool.execute("UPDATE cache_counters SET value = 0 WHERE name = 'evictions'")


# -- helpers ----------------------------------------------------------------------------------
def key_of(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def unit(i: int) -> list[float]:
    """The i-th basis vector."""
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def random_unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(DIM)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


async def put(
    pool: Any,
    key: str,
    *,
    client_id: str | None = "c1",
    tier: cache.Tier = "exact",
    kind: str = "business_plan",
    section: str = "executive_summary",
    schema_version: int = 1,
    ttl: timedelta = DAY,
    embedding: list[float] | None = None,
    max_entries: int = 1000,
    content: dict[str, Any] | None = None,
    cost: str = "0.00125",
    section_id: int | None = None,
    prompt_version: int = 3,
    model: str = "gpt-4.1-mini",
) -> int:
    return await cache.put(
        pool,
        key=key,
        tier=tier,
        client_id=client_id,
        document_kind=kind,
        section_key=section,
        schema_version=schema_version,
        prompt_version=prompt_version,
        section_id=section_id,
        content=content if content is not None else {"title": key[:8], "body": "text"},
        inputs={"niche": "fitness", "followers": 12000},
        model=model,
        completion_tokens=420,
        cost=Decimal(cost),
        ttl=ttl,
        embedding=embedding,
        max_entries=max_entries,
    )


async def keys(pool: asyncpg.Pool) -> set[str]:
    """The stored keys; also checks every entry has exactly its usage row and the counter agrees."""
    entries = {r["key"] for r in await pool.fetch("SELECT key FROM cache_entries")}
    used = {r["key"] for r in await pool.fetch("SELECT key FROM cache_usage")}
    assert used == entries
    assert await counter(pool, "entries") == len(entries)
    return entries


async def counter(pool: asyncpg.Pool, name: str) -> int:
    return int(await pool.fetchval("SELECT value FROM cache_counters WHERE name = $1", name))


# -- exact lookups ----------------------------------------------------------------------------
async def test_put_get_round_trip(pool: asyncpg.Pool) -> None:
    k = key_of("c1", "executive_summary", 1)
    assert await put(pool, k, embedding=unit(0)) == 0
    first = await cache.get_exact(pool, k, schema_version=1)
    assert first is not None
    assert first.key == k and first.tier == "exact" and first.client_id == "c1"
    assert first.document_kind == "business_plan" and first.section_key == "executive_summary"
    assert first.schema_version == 1 and first.prompt_version == 3 and first.section_id is None
    assert first.content == {"title": k[:8], "body": "text"}
    assert first.inputs == {"niche": "fitness", "followers": 12000}
    assert first.model == "gpt-4.1-mini" and first.completion_tokens == 420
    assert first.cost == Decimal("0.00125")
    assert first.hits == 1
    assert first.expires_at - first.created_at == DAY
    second = await cache.get_exact(pool, k, schema_version=1)
    assert second is not None and second.hits == 2 and second.last_used_at > first.last_used_at
    assert await cache.get_exact(pool, key_of("other"), schema_version=1) is None


async def test_put_replaces_and_resets(pool: asyncpg.Pool) -> None:
    k = key_of("replace")
    await put(pool, k)
    await cache.get_exact(pool, k, schema_version=1)
    await put(pool, k, content={"title": "new"}, cost="0.5")
    entry = await cache.get_exact(pool, k, schema_version=1)
    assert entry is not None and entry.content == {"title": "new"} and entry.cost == Decimal("0.5")
    assert entry.hits == 1
    assert await pool.fetchval("SELECT count(*) FROM cache_entries") == 1
    assert await counter(pool, "entries") == 1


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-5)])
async def test_expired_entry_misses(pool: asyncpg.Pool, ttl: timedelta) -> None:
    k = key_of("expired", ttl)
    await put(pool, k, ttl=ttl, embedding=unit(1))
    assert await cache.get_exact(pool, k, schema_version=1) is None
    found = await similar(pool, "c1", unit(1), threshold=0.5)
    assert found is None
    assert await pool.fetchval("SELECT hits FROM cache_usage WHERE key = $1", k) == 0


async def test_schema_change_misses_and_deletes(pool: asyncpg.Pool) -> None:
    k = key_of("schema")
    await put(pool, k, schema_version=1)
    assert await cache.get_exact(pool, k, schema_version=2) is None
    assert await keys(pool) == set()
    assert await counter(pool, "entries") == 0
    assert await cache.get_exact(pool, k, schema_version=1) is None


async def test_unparseable_content_is_deleted(pool: asyncpg.Pool) -> None:
    bad = key_of("not an object")
    await put(pool, bad)
    await pool.execute("UPDATE cache_entries SET content = '\"just a string\"'::jsonb WHERE key = $1", bad)
    assert await cache.get_exact(pool, bad, schema_version=1) is None
    assert bad not in await keys(pool)

    invalid = key_of("fails validation")
    await put(pool, invalid, content={"wrong": True})

    def validate(content: dict[str, Any]) -> None:
        if "title" not in content:
            raise ValueError("title missing")

    assert await cache.get_exact(pool, invalid, schema_version=1, validate=validate) is None
    assert invalid not in await keys(pool)

    good = key_of("valid")
    await put(pool, good)
    assert await cache.get_exact(pool, good, schema_version=1, validate=validate) is not None


async def test_section_delete_sets_null(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO clients (id, current_version, status) VALUES ('c-fk', 1, 'active') ON CONFLICT DO NOTHING"
    )
    section_id = await sections.store(
        pool,
        idempotency_key=key_of("section-fk"),
        client_id="c-fk",
        client_version=1,
        document_kind="business_plan",
        section_key="executive_summary",
        schema_version=1,
        prompt_version=3,
        model="gpt-4.1-mini",
        content={"title": "t"},
    )
    k = key_of("fk")
    await put(pool, k, client_id="c-fk", section_id=section_id)
    entry = await cache.get_exact(pool, k, schema_version=1)
    assert entry is not None and entry.section_id == section_id
    await pool.execute("DELETE FROM sections WHERE id = $1", section_id)
    entry = await cache.get_exact(pool, k, schema_version=1)
    assert entry is not None and entry.section_id is None


async def test_put_rejects_bad_scope_and_dimensions(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError):
        await put(pool, key_of("t"), tier="template", client_id="c1")
    with pytest.raises(ValueError):
        await put(pool, key_of("e"), tier="exact", client_id=None)
    with pytest.raises(ValueError):
        await put(pool, key_of("d"), embedding=[1.0, 0.0])
    assert await keys(pool) == set()


# -- eviction ---------------------------------------------------------------------------------
async def test_lru_eviction_keeps_recently_used(pool: asyncpg.Pool) -> None:
    a, b, c, d, e = (key_of("lru", x) for x in "abcde")
    for k in (a, b, c):
        assert await put(pool, k, max_entries=3) == 0
    assert await cache.get_exact(pool, a, schema_version=1) is not None  # a is now the most recent
    assert await put(pool, d, max_entries=3) == 1
    assert await keys(pool) == {a, c, d}
    assert await put(pool, e, max_entries=3) == 1
    assert await keys(pool) == {a, d, e}
    assert await counter(pool, "evictions") == 2
    # Replacing an existing key adds no entry, so it evicts nothing.
    assert await put(pool, a, max_entries=3) == 0
    # A lower cap evicts several at once.
    assert await put(pool, c, max_entries=2) == 2
    assert await keys(pool) == {a, c}
    assert await counter(pool, "evictions") == 4
    assert await counter(pool, "entries") == 2
    assert (await cache.stats(pool))["entries"]["evictions"] == 4


async def test_concurrent_writers_stay_consistent(pool: asyncpg.Pool) -> None:
    """Puts (new keys, and replacements of the oldest keys, which eviction is after), hits,
    semantic hits, stale-schema deletes and invalidations, all racing: no error or deadlock, and
    afterwards the cap holds and the counters and the usage rows agree with the entries."""
    cap = 8
    rng = random.Random(3)
    vectors = [random_unit(rng) for _ in range(12)]
    for i in range(cap):
        await put(pool, key_of("race", i), max_entries=cap, embedding=vectors[i])

    async def writer(i: int) -> int:
        return await put(pool, key_of("race", i % 12), max_entries=cap, embedding=vectors[i % 12])

    async def reader(i: int) -> None:
        await cache.get_exact(pool, key_of("race", i % 12), schema_version=1 if i % 7 else 2)

    async def semantic(i: int) -> None:
        await similar(pool, "c1", vectors[i % 12], threshold=0.9)

    async def invalidator(i: int) -> None:
        await cache.invalidate(pool, client_id="c1", section_keys=["other", "executive_summary"])

    jobs = [writer(i) for i in range(150)] + [reader(i) for i in range(150)]
    jobs += [semantic(i) for i in range(60)] + [invalidator(i) for i in range(5)]
    rng.shuffle(jobs)
    results = await asyncio.wait_for(asyncio.gather(*jobs), 60)
    evicted = sum(r for r in results if isinstance(r, int))
    # Eviction skips rows another transaction holds (an invalidation, a put), so the cap may be
    # passed while they race; the next put catches up.
    evicted += await put(pool, key_of("race", 0), max_entries=cap, embedding=vectors[0])
    assert len(await keys(pool)) <= cap  # keys() checks usage rows and the entries counter
    assert await counter(pool, "evictions") == evicted > 0
    # Once quiet, a put fills up to the cap exactly.
    for i in range(12):
        await put(pool, key_of("refill", i), max_entries=cap)
    assert len(await keys(pool)) == cap


# -- semantic lookups and tenant isolation ----------------------------------------------------
async def similar(
    pool: Any, client_id: str, embedding: list[float], **kw: Any
) -> tuple[cache.CacheEntry, float] | None:
    return await cache.find_similar(
        pool, scope(client_id, **kw), embedding=embedding, threshold=kw.get("threshold", 0.9)
    )


def scope(client_id: str, **kw: Any) -> cache.Scope:
    return cache.Scope(
        client_id=client_id,
        document_kind=kw.get("kind", "business_plan"),
        section_key=kw.get("section", "executive_summary"),
        schema_version=kw.get("schema_version", 1),
        prompt_version=kw.get("prompt_version", 3),
        model=kw.get("model", "gpt-4.1-mini"),
    )


async def test_earlier_answers_under_another_prompt_version_or_model_are_never_candidates(pool: asyncpg.Pool) -> None:
    v = random_unit(random.Random(9))
    await put(pool, key_of("pv", 1), client_id="client-v", embedding=v, prompt_version=2)
    await put(pool, key_of("pv", 2), client_id="client-v", embedding=v, model="gpt-4.1-nano")
    assert await similar(pool, "client-v", v, threshold=-1.0) is None
    assert await cache.latest_in_scope(pool, scope("client-v")) is None
    assert await cache.candidates(pool, scope("client-v")) == []
    await put(pool, key_of("pv", 3), client_id="client-v", embedding=v)
    found = await similar(pool, "client-v", v, threshold=-1.0)
    assert found is not None and found[0].key == key_of("pv", 3)
    latest = await cache.latest_in_scope(pool, scope("client-v"))
    assert latest is not None and latest.key == key_of("pv", 3)


async def test_find_similar_never_crosses_tenants(pool: asyncpg.Pool) -> None:
    rng = random.Random(5)
    v = random_unit(rng)
    near = [x + 0.01 * rng.gauss(0, 1) for x in v]
    # Another client and a template hold the identical vector; our client only a near one.
    await put(pool, key_of("b", "s"), client_id="client-b", embedding=v)
    await put(pool, key_of("template", "s"), client_id=None, tier="template", embedding=v)
    await put(pool, key_of("a", "s"), client_id="client-a", embedding=near)
    # Our client's identical vectors in the wrong section, kind, schema, or expired.
    await put(pool, key_of("a", "other section"), client_id="client-a", section="market", embedding=v)
    await put(pool, key_of("a", "other kind"), client_id="client-a", kind="deliverable", embedding=v)
    await put(pool, key_of("a", "old schema"), client_id="client-a", schema_version=0, embedding=v)
    await put(pool, key_of("a", "expired"), client_id="client-a", ttl=timedelta(0), embedding=v)

    found = await similar(pool, "client-a", v)
    assert found is not None
    entry, score = found
    assert entry.key == key_of("a", "s") and entry.client_id == "client-a" and entry.tier == "exact"
    assert 0.98 < score < 0.999
    assert entry.hits == 1
    assert await similar(pool, "client-c", v, threshold=-1.0) is None
    assert await similar(pool, "client-a", v, section="missing", threshold=-1.0) is None


async def test_find_similar_isolated_among_many(pool: asyncpg.Pool) -> None:
    """With thousands of indexed rows of other clients (and templates) closer to the query, ours is
    still found, by the planner's path (the scope btree here) and by the HNSW path alone."""
    rng = random.Random(9)
    v = random_unit(rng)
    rows = []
    for i in range(3000):
        client = None if i % 10 == 0 else f"noise-{i % 150}"
        if i % 10 == 1:
            vec = v  # identical to the query
        elif i % 3 == 0:
            vec = [x + 0.01 * rng.gauss(0, 1) for x in v]  # closer to the query than ours
        else:
            vec = random_unit(rng)
        rows.append(
            (
                key_of("noise", i),
                "template" if client is None else "exact",
                client,
                "business_plan",
                "executive_summary",
                cache._vector(vec),
            )
        )
    await pool.executemany(
        """INSERT INTO cache_entries (key, tier, client_id, document_kind, section_key, schema_version,
               prompt_version, content, inputs, model, completion_tokens, cost, embedding, expires_at)
           VALUES ($1, $2, $3, $4, $5, 1, 1, '{}'::jsonb, '{}'::jsonb, 'm', 1, 0, $6::text::vector,
                   now() + interval '1 day')""",
        rows,
    )
    await pool.execute("INSERT INTO cache_usage (key) SELECT key FROM cache_entries")
    await pool.execute("ANALYZE cache_entries")
    mine = [x + 0.05 * rng.gauss(0, 1) for x in v]
    await put(pool, key_of("mine"), client_id="target", embedding=mine, max_entries=10_000)
    found = await similar(pool, "target", v, threshold=0.5)
    assert found is not None and found[0].key == key_of("mine")
    assert found[1] < 0.99  # not one of the closer vectors of the others
    assert await similar(pool, "nobody", v, threshold=-1.0) is None

    # The HNSW path alone (the scope btree made unusable), as the benchmark times it: without the
    # iterative scan the filter discards every candidate the graph search returns.
    sql = cache._similar_sql("client_id || '' = $1")
    args = (*scope("target").args(), cache._vector(v), 0.5)
    for iterative, expected in (("off", None), ("relaxed_order", key_of("mine"))):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL hnsw.iterative_scan = {iterative}")
            await conn.execute("SET LOCAL enable_sort = off")
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
            assert "cache_entries_embedding_idx" in plan
            row = await conn.fetchrow(sql, *args)
        assert (row and row["key"]) == expected, iterative


async def test_find_similar_threshold(pool: asyncpg.Pool) -> None:
    await put(pool, key_of("x"), embedding=unit(0))
    query = [0.0] * DIM
    query[0], query[1] = 0.8, 0.6  # cosine similarity 0.8 with unit(0)
    assert await similar(pool, "c1", query, threshold=0.81) is None
    assert await pool.fetchval("SELECT hits FROM cache_usage") == 0
    found = await similar(pool, "c1", query, threshold=0.79)
    assert found is not None and found[1] == pytest.approx(0.8, abs=1e-5)
    assert found[0].hits == 1


async def test_entry_without_embedding_is_not_similar(pool: asyncpg.Pool) -> None:
    await put(pool, key_of("no-embedding"), embedding=None)
    assert await similar(pool, "c1", unit(0), threshold=-1.0) is None
    assert await cache.get_exact(pool, key_of("no-embedding"), schema_version=1) is not None


# -- invalidation and purges ------------------------------------------------------------------
async def test_invalidate_only_that_clients_sections(pool: asyncpg.Pool) -> None:
    for client, section in [("a", "s1"), ("a", "s2"), ("a", "s3"), ("b", "s1")]:
        await put(pool, key_of(client, section), client_id=client, section=section)
    await put(pool, key_of("template", "s1"), client_id=None, tier="template", section="s1")
    await put(pool, key_of("a", "s1", "deliverable"), client_id="a", section="s1", kind="deliverable")
    assert await cache.invalidate(pool, client_id="a", section_keys=["s1", "s2"]) == 3
    stale = {r["key"] for r in await pool.fetch("SELECT key FROM cache_entries WHERE stale")}
    assert stale == {key_of("a", "s1"), key_of("a", "s2"), key_of("a", "s1", "deliverable")}
    # Stale entries are never served as exact hits; the others still are.
    assert await cache.get_exact(pool, key_of("a", "s1"), schema_version=1) is None
    assert await cache.get_exact(pool, key_of("a", "s3"), schema_version=1) is not None
    assert await cache.get_exact(pool, key_of("b", "s1"), schema_version=1) is not None
    # Invalidating again changes nothing; an empty list is a no-op.
    assert await cache.invalidate(pool, client_id="a", section_keys=["s1", "s2"]) == 0
    assert await cache.invalidate(pool, client_id="a", section_keys=[]) == 0
    assert await counter(pool, "entries") == 6


async def test_purge_filters(pool: asyncpg.Pool) -> None:
    await put(pool, key_of(1), client_id="a", kind="business_plan")
    await put(pool, key_of(2), client_id="a", kind="deliverable")
    await put(pool, key_of(3), client_id="b", kind="business_plan")
    await put(pool, key_of(4), client_id="b", kind="deliverable", ttl=timedelta(seconds=-1))
    await put(pool, key_of(5), client_id="a", kind="business_plan", ttl=timedelta(seconds=-1))
    await put(pool, key_of(6), client_id=None, tier="template", kind="summary")

    assert await cache.purge(pool, expired_only=True, client_id="a") == 1
    assert await keys(pool) == {key_of(i) for i in (1, 2, 3, 4, 6)}
    assert await cache.purge(pool, expired_only=True) == 1
    assert await cache.purge(pool, client_id="a", kind="deliverable") == 1
    assert await cache.purge(pool, kind="business_plan") == 2
    assert await keys(pool) == {key_of(6)}
    assert await cache.purge(pool, client_id="nobody") == 0
    assert await cache.purge(pool) == 1
    assert await keys(pool) == set()
    assert await counter(pool, "entries") == 0


# -- stats ------------------------------------------------------------------------------------
async def test_stats(pool: asyncpg.Pool) -> None:
    await put(pool, key_of(1), client_id="a", kind="business_plan", cost="0.01")
    await put(pool, key_of(2), client_id="a", kind="deliverable", cost="0.02")
    await put(pool, key_of(3), client_id=None, tier="template", kind="business_plan")
    await put(pool, key_of(4), client_id="b", kind="business_plan", ttl=timedelta(seconds=-1))
    for _ in range(3):
        await cache.get_exact(pool, key_of(1), schema_version=1)
    await cache.get_exact(pool, key_of(2), schema_version=1)

    ledger = [
        UsageRecord(
            operation="generate_section",
            model="m",
            prompt_tokens=100,
            completion_tokens=50,
            estimated_cost=Decimal("0.002"),
            baseline_prompt_tokens=300,
            baseline_completion_tokens=50,
            baseline_cost=Decimal("0.005"),
            cache_tier=None,
        ),
        UsageRecord(
            operation="generate_section",
            model="m",
            cache_hit=True,
            cache_tier="exact",
            baseline_prompt_tokens=300,
            baseline_completion_tokens=50,
            baseline_cost=Decimal("0.005"),
        ),
        UsageRecord(
            operation="generate_section",
            model="m",
            cache_hit=True,
            cache_tier="exact",
            baseline_prompt_tokens=200,
            baseline_completion_tokens=40,
            baseline_cost=Decimal("0.004"),
        ),
        UsageRecord(
            operation="generate_section",
            model="m",
            cache_hit=True,
            cache_tier="semantic",
            baseline_prompt_tokens=100,
            baseline_completion_tokens=10,
            baseline_cost=Decimal("0.001"),
        ),
    ]
    for record in ledger:
        await usage.record(pool, record)

    out = await cache.stats(pool)
    entries = out["entries"]
    assert entries["total"] == 4
    assert entries["by_tier"] == {"exact": 3, "template": 1}
    assert entries["by_kind"] == {"business_plan": 3, "deliverable": 1}
    assert entries["expired"] == 1
    assert entries["hits"] == 4
    assert entries["evictions"] == 0
    assert entries["saved_cost_by_hits"] == pytest.approx(3 * 0.01 + 0.02)
    assert entries["saved_completion_tokens_by_hits"] == 4 * 420
    by_tier = out["ledger"]["by_tier"]
    assert set(by_tier) == {"none", "exact", "semantic"}
    assert by_tier["exact"]["calls"] == 2 and by_tier["exact"]["hits"] == 2
    assert by_tier["exact"]["hit_rate"] == 1.0 and by_tier["exact"]["share_of_calls"] == 0.5
    assert by_tier["exact"]["saved_tokens"] == 350 + 240
    assert by_tier["exact"]["saved_cost"] == pytest.approx(0.009)
    assert by_tier["none"] == {
        "calls": 1,
        "hits": 0,
        "hit_rate": 0.0,
        "share_of_calls": 0.25,
        "saved_tokens": 200,
        "saved_cost": pytest.approx(0.003),
    }
    total = out["ledger"]["total"]
    assert total["calls"] == 4 and total["hits"] == 3 and total["hit_rate"] == 0.75
    assert total["saved_tokens"] == 200 + 590 + 110
    assert isinstance(total["saved_cost"], float)


# -- single flight ----------------------------------------------------------------------------
async def test_single_flight_same_key_serialises(pool: asyncpg.Pool) -> None:
    spans: list[tuple[float, float]] = []

    async def worker() -> None:
        async with cache.single_flight(pool, "key-1"):
            began = time.monotonic()
            await asyncio.sleep(0.3)
            spans.append((began, time.monotonic()))

    await asyncio.wait_for(asyncio.gather(worker(), worker(), worker()), 10)
    spans.sort()
    assert len(spans) == 3
    for (_, end), (begin, _) in zip(spans, spans[1:], strict=False):
        assert begin >= end, spans


async def test_single_flight_different_keys_run_concurrently(pool: asyncpg.Pool) -> None:
    inside = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def worker(name: str, other: str) -> None:
        async with cache.single_flight(pool, f"key-{name}"):
            inside[name].set()
            # Only passes if the other holder is inside at the same time.
            await asyncio.wait_for(inside[other].wait(), 5)

    await asyncio.wait_for(asyncio.gather(worker("a", "b"), worker("b", "a")), 10)


async def test_single_flight_generates_once(pool: asyncpg.Pool) -> None:
    """The callers' pattern: concurrent misses of one key make one generation."""
    k = key_of("flight")
    generated = 0

    async def section() -> dict[str, Any]:
        nonlocal generated
        async with cache.single_flight(pool, k) as conn:
            hit = await cache.get_exact(conn, k, schema_version=1)
            if hit:
                return hit.content
            generated += 1
            await asyncio.sleep(0.2)  # the LLM call
            await put(conn, k, content={"title": "generated"})
            return {"title": "generated"}

    results = await asyncio.wait_for(asyncio.gather(*(section() for _ in range(5))), 20)
    assert generated == 1
    assert all(r == {"title": "generated"} for r in results)
    assert await pool.fetchval("SELECT hits FROM cache_usage WHERE key = $1", k) == 4


async def test_single_flight_released_on_error_and_cancellation(pool: asyncpg.Pool) -> None:
    with pytest.raises(RuntimeError):
        async with cache.single_flight(pool, "key-err"):
            raise RuntimeError("generation failed")
    async with cache.single_flight(pool, "key-err", lock_timeout=2):
        pass

    entered = asyncio.Event()

    async def holder() -> None:
        async with cache.single_flight(pool, "key-cancel"):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(holder())
    await asyncio.wait_for(entered.wait(), 5)
    # A waiter times out while the holder runs ...
    with pytest.raises(TimeoutError):
        async with cache.single_flight(pool, "key-cancel", lock_timeout=0.3):
            pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # ... and gets the lock at once after the holder was cancelled.
    async with cache.single_flight(pool, "key-cancel", lock_timeout=2):
        pass
    # No advisory lock is left on any pooled connection.
    assert await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
