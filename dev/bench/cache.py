"""`wavelaunch bench cache`: cache lookup latency at 1k, 10k and 100k entries.

Runs in a fresh database (created on the server of ``database_url``, dropped afterwards), so it
never touches real data. At each size the table is filled with COPY (random unit vectors of 256
dimensions over 200 clients x 8 sections, one row in 25 a template), the HNSW index is rebuilt
(timed), then sequential, client-observed latencies are taken through a pool, as the service
calls them:

- exact: ``get_exact`` on live keys (all hits);
- semantic: ``find_similar`` for an entry's client and section with a near-duplicate query
  (cosine ~0.99; threshold 0.95), as the planner runs it, plus its recall (the intended entry);
- semantic HNSW only: the same query with the scope btree made unusable and sorting disabled,
  so the HNSW index with the iterative scan serves it: the path the planner would take for a
  big client/section group;
- semantic miss: a random query (nothing similar), on both paths: the worst case of a lookup;
- put: ``put`` of a new entry with ``max_entries`` = size, so each put also evicts one entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pgvector.asyncpg import register_vector
from rich.console import Console
from rich.table import Table

from storage import cache, db

CLIENTS = 200
SECTIONS = (
    "executive_summary",
    "brand_identity",
    "target_audience",
    "market_analysis",
    "product_strategy",
    "marketing_plan",
    "operations",
    "financials",
)
KIND = "business_plan"
THRESHOLD = 0.95
QUERY_NOISE = 0.006  # per coordinate, on a unit vector of 256 dimensions: cosine ~0.99
PUTS = 200
HNSW_MISSES = 100  # a miss on the HNSW path reads up to hnsw.max_scan_tuples: fewer of them
WARMUP = 20
EMBEDDING_INDEX = "cache_entries_embedding_idx"


# -- data -------------------------------------------------------------------------------------
def _key(seed: int, row: int) -> str:
    return hashlib.sha256(f"bench-cache:{seed}:{row}".encode()).hexdigest()


def _vector(seed: int, row: int) -> list[float]:
    """Row ``row``'s embedding: a random direction (uniform per coordinate), unit length."""
    raw = random.Random(seed * 1_000_003 + row).randbytes(cache.EMBEDDING_DIM)
    values = [b - 127.5 for b in raw]
    norm = math.sqrt(math.fsum(x * x for x in values))
    return [x / norm for x in values]


def _near(vector: Sequence[float], rng: random.Random) -> list[float]:
    noisy = [x + rng.gauss(0.0, QUERY_NOISE) for x in vector]
    norm = math.sqrt(math.fsum(x * x for x in noisy))
    return [x / norm for x in noisy]


def _scope(row: int) -> tuple[str, str | None, str]:
    """(tier, client_id, section_key) of a row."""
    section = SECTIONS[(row // CLIENTS) % len(SECTIONS)]
    if row % 25 == 0:
        return "template", None, section
    return "exact", f"client-{row % CLIENTS:03d}", section


_COPY_COLUMNS = [
    "key", "tier", "client_id", "document_kind", "section_key", "schema_version", "prompt_version",
    "content", "inputs", "model", "completion_tokens", "cost", "embedding", "expires_at",
]  # fmt: skip


async def _fill(conn: asyncpg.Connection, seed: int, start: int, stop: int) -> None:
    """COPY rows ``start`` .. ``stop - 1`` (the connection has the pgvector codec)."""
    expires = await conn.fetchval("SELECT now() + interval '30 days'")
    batch = 10_000
    for first in range(start, stop, batch):
        records = []
        for row in range(first, min(first + batch, stop)):
            tier, client_id, section = _scope(row)
            content = {"title": f"Section {row}", "body": "Lorem ipsum dolor sit amet. " * 8}
            records.append(
                (
                    _key(seed, row), tier, client_id, KIND, section, 1, 1,
                    json.dumps(content), json.dumps({"row": row, "niche": "fitness"}),
                    "gpt-4.1-mini", 400, Decimal("0.0008"), _vector(seed, row), expires,
                )
            )  # fmt: skip
        await conn.copy_records_to_table("cache_entries", records=records, columns=_COPY_COLUMNS)
        await conn.copy_records_to_table("cache_usage", records=[(r[0],) for r in records], columns=["key"])


# -- measuring --------------------------------------------------------------------------------
def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "p50": round(_percentile(ordered, 0.50), 3),
        "p95": round(_percentile(ordered, 0.95), 3),
        "p99": round(_percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3),
    }


async def _timed(calls: Sequence[Callable[[], Awaitable[Any]]]) -> tuple[list[float], list[Any]]:
    samples, results = [], []
    for call in calls:
        began = time.perf_counter()
        results.append(await call())
        samples.append((time.perf_counter() - began) * 1000)
    return samples, results


def _scope_of(client_id: str, section: str) -> cache.Scope:
    """The lookup scope of the bench's entries (prompt version 1, one model)."""
    return cache.Scope(client_id, KIND, section, schema_version=1, prompt_version=1, model="gpt-4.1-mini")


async def _hnsw_only(pool: asyncpg.Pool, vector: list[float], client_id: str, section: str) -> str | None:
    """The semantic lookup with the scope btree unusable: served by the HNSW index."""
    sql = cache._similar_sql("client_id || '' = $1")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL enable_sort = off")
        row = await conn.fetchrow(sql, *_scope_of(client_id, section).args(), cache._vector(vector), THRESHOLD)
    return row["key"] if row else None


async def _plan_access(pool: asyncpg.Pool, vector: list[float], client_id: str, section: str) -> list[str]:
    """How the planner reads cache_entries for ``find_similar``'s candidates (scans and indexes)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) " + cache._similar_sql(),
            *_scope_of(client_id, section).args(), cache._vector(vector), THRESHOLD,
        )  # fmt: skip
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        index = node.get("Index Name")
        if index and index.startswith("cache_entries_") and index != "cache_entries_pkey":
            found.append(f"{node['Node Type']} on {index}")
        elif node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "cache_entries":
            found.append("Seq Scan")
        for child in node.get("Plans", []):
            walk(child)

    walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    return found


async def _measure(pool: asyncpg.Pool, seed: int, size: int, lookups: int, rng: random.Random) -> dict[str, Any]:
    targets = [
        (r["key"], r["client_id"], r["section_key"], int(r["row"]))
        for r in await pool.fetch(
            """SELECT key, client_id, section_key, (inputs->>'row')::int AS row FROM cache_entries
               WHERE tier = 'exact' AND inputs ? 'row' ORDER BY random() LIMIT $1""",
            lookups + WARMUP,
        )
    ]
    warm, targets = targets[:WARMUP], targets[WARMUP:]
    queries = [(_near(_vector(seed, row), rng), key, client, section) for key, client, section, row in targets]
    randoms = [
        ([rng.gauss(0, 1) for _ in range(cache.EMBEDDING_DIM)], client, section) for _, client, section, _ in targets
    ]

    def similar(vector: list[float], client: str, section: str) -> Callable[[], Awaitable[Any]]:
        return lambda: cache.find_similar(pool, _scope_of(client, section), embedding=vector, threshold=THRESHOLD)

    def exact(key: str) -> Callable[[], Awaitable[Any]]:
        return lambda: cache.get_exact(pool, key, schema_version=1)

    def hnsw(vector: list[float], client: str, section: str) -> Callable[[], Awaitable[Any]]:
        return lambda: _hnsw_only(pool, vector, client, section)

    # Warm the caches and the prepared statements.
    for key, client, section, row in warm:
        await exact(key)()
        await similar(_vector(seed, row), client, section)()
        await hnsw(_vector(seed, row), client, section)()

    exact_ms, exact_res = await _timed([exact(key) for _, key, _, _ in queries])
    sem_ms, sem_res = await _timed([similar(v, c, s) for v, _, c, s in queries])
    hnsw_ms, hnsw_res = await _timed([hnsw(v, c, s) for v, _, c, s in queries])
    miss_ms, miss_res = await _timed([similar(v, c, s) for v, c, s in randoms])
    hnsw_miss_ms, hnsw_miss_res = await _timed([hnsw(v, c, s) for v, c, s in randoms[:HNSW_MISSES]])

    def put(row: int) -> Callable[[], Awaitable[int]]:
        tier, client_id, section = _scope(row)
        return lambda: cache.put(
            pool, key=_key(seed, row), tier="exact", client_id=client_id or "client-000",
            document_kind=KIND, section_key=section, schema_version=1, prompt_version=1, section_id=None,
            content={"title": f"Section {row}"}, inputs={"row": row}, model="gpt-4.1-mini",
            completion_tokens=400, cost=0.0008, ttl=timedelta(days=30), embedding=_vector(seed, row),
            max_entries=size,
        )  # fmt: skip

    put_rows = range(10_000_000 + size, 10_000_000 + size + PUTS)
    put_ms, evicted = await _timed([put(row) for row in put_rows])

    probe_vector, _, probe_client, probe_section = queries[0]
    return {
        "entries": size,
        "exact_ms": _summary(exact_ms),
        "exact_hit_rate": sum(r is not None for r in exact_res) / len(exact_res),
        "semantic_ms": _summary(sem_ms),
        "semantic_recall": sum(bool(r) and r[0].key == k for r, (_, k, _, _) in zip(sem_res, queries, strict=True))
        / len(queries),
        "semantic_plan": await _plan_access(pool, probe_vector, probe_client, probe_section),
        "semantic_hnsw_ms": _summary(hnsw_ms),
        "semantic_hnsw_recall": sum(r == k for r, (_, k, _, _) in zip(hnsw_res, queries, strict=True)) / len(queries),
        "semantic_miss_ms": _summary(miss_ms),
        "semantic_miss_false_hits": sum(r is not None for r in miss_res),
        "semantic_hnsw_miss_ms": _summary(hnsw_miss_ms),
        "semantic_hnsw_miss_false_hits": sum(r is not None for r in hnsw_miss_res),
        "put_evict_ms": _summary(put_ms),
        "put_evicted": sum(evicted),
    }


# -- the run ----------------------------------------------------------------------------------
def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def run(
    database_url: str, sizes: Sequence[int] = (1000, 10000, 100000), lookups: int = 500, seed: int = 1
) -> dict[str, Any]:
    """Measure cache latencies at each size (ascending) in a throwaway database; JSON-friendly."""
    sizes = sorted(sizes)
    name = f"wavelaunch_bench_cache_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    began = time.monotonic()
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    dsn = _with_database(database_url, name)
    try:
        pool = await db.connect(dsn, min_size=1, max_size=2)
        loader = await asyncpg.connect(dsn)
        try:
            await register_vector(loader)
            await loader.execute("SET maintenance_work_mem = '512MB'")
            index_sql = await loader.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1", EMBEDDING_INDEX)
            server = {
                "server_version": await loader.fetchval("SHOW server_version"),
                "pgvector_version": await loader.fetchval(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ),
                "max_parallel_maintenance_workers": int(await loader.fetchval("SHOW max_parallel_maintenance_workers")),
                "hnsw_ef_search": int(await loader.fetchval("SHOW hnsw.ef_search")),
            }
            loaded = 0
            for size in sizes:
                await loader.execute(f"DROP INDEX IF EXISTS {EMBEDDING_INDEX}")
                current = int(await loader.fetchval("SELECT count(*) FROM cache_entries"))
                t0 = time.perf_counter()
                await _fill(loader, seed, loaded, loaded + size - current)
                loaded += size - current
                load_s = time.perf_counter() - t0
                await loader.execute("VACUUM ANALYZE cache_entries")
                t0 = time.perf_counter()
                await loader.execute(index_sql)
                build_s = time.perf_counter() - t0
                row = await _measure(pool, seed, size, lookups, rng)
                row["load_s"] = round(load_s, 2)
                row["index_build_s"] = round(build_s, 2)
                row["table_mb"] = round(await loader.fetchval("SELECT pg_table_size('cache_entries')") / 2**20, 1)
                row["hnsw_index_mb"] = round(
                    await loader.fetchval("SELECT pg_relation_size($1::regclass)", EMBEDDING_INDEX) / 2**20, 1
                )
                rows.append(row)
        finally:
            await loader.close()
            await pool.close()
    finally:
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return {
        "sizes": rows,
        "lookups": lookups,
        "seed": seed,
        "threshold": THRESHOLD,
        "clients": CLIENTS,
        "sections": len(SECTIONS),
        "targets_ms_p95": {"exact": 2.0, "semantic": 20.0},
        "server": server,
        "seconds": round(time.monotonic() - began, 1),
    }


# -- rendering --------------------------------------------------------------------------------
def table(result: dict[str, Any]) -> Table:
    """One row per size: latencies in ms (p50 / p95 / p99) and recall."""
    out = Table(
        title=f"Cache lookups, ms p50 / p95 / p99 over {result['lookups']} sequential calls "
        f"(targets p95: exact < {result['targets_ms_p95']['exact']} ms, "
        f"semantic < {result['targets_ms_p95']['semantic']} ms)",
        title_justify="left",
    )
    for column in (
        "entries", "HNSW build s", "exact", "semantic (planner)", "recall", "semantic (HNSW)", "recall",
        "miss (planner)", "miss (HNSW)", "put+evict",
    ):  # fmt: skip
        out.add_column(column, justify="right")

    def lat(s: dict[str, float]) -> str:
        return f"{s['p50']:.2f} / {s['p95']:.2f} / {s['p99']:.2f}"

    for r in result["sizes"]:
        out.add_row(
            f"{r['entries']:,}",
            f"{r['index_build_s']:.2f}",
            lat(r["exact_ms"]),
            lat(r["semantic_ms"]),
            f"{r['semantic_recall']:.3f}",
            lat(r["semantic_hnsw_ms"]),
            f"{r['semantic_hnsw_recall']:.3f}",
            lat(r["semantic_miss_ms"]),
            lat(r["semantic_hnsw_miss_ms"]),
            lat(r["put_evict_ms"]),
        )
    return out


def format_table(result: dict[str, Any]) -> str:
    """The table as plain text, plus the planner's index choice per size."""
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table(result))
    for r in result["sizes"]:
        console.print(
            f"{r['entries']:,} entries: the planner serves find_similar with {', '.join(r['semantic_plan'])}; "
            f"table {r['table_mb']} MB, HNSW index {r['hnsw_index_mb']} MB, COPY {r['load_s']} s"
        )
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()
