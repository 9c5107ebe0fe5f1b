"""The provider rate limits' shared window (domain.rate_limits): reserve a call's estimated
tokens and one request before the call, settle the billed tokens after it.

A reservation holds a per-model advisory lock for its short transaction, so concurrent callers
on any number of workers see each other's calls: the tokens and requests in any 60 s window
never exceed the limits (an underestimate settled higher is the only way past them). The clock
is Postgres's, one for every worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from domain.rate_limits import HELD_SECONDS, ModelLimit, wait_seconds

# pg_advisory_xact_lock(class, hashtext(model)): one lock per model, apart from other locks.
_LOCK_CLASS = 0x5A7E


@dataclass(frozen=True)
class Granted:
    """A call's place in the window: its row and the tokens it holds until settled."""

    id: int
    tokens: int


@dataclass(frozen=True)
class MustWait:
    """The call does not fit yet: try again after ``seconds``."""

    seconds: float


async def reserve(pool: asyncpg.Pool, model: str, tokens: int, limit: ModelLimit) -> Granted | MustWait:
    """Hold ``tokens`` (capped at the per-minute limit) and one request for ``model`` if they fit
    in the window now; else how long until they would (nothing held)."""
    if limit.tokens_per_minute is not None:
        tokens = min(tokens, limit.tokens_per_minute)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, model)
        await conn.execute(
            "DELETE FROM rate_limit_calls WHERE model = $1 AND at <= clock_timestamp() - make_interval(secs => $2)",
            model,
            HELD_SECONDS,
        )
        rows = await conn.fetch(
            "SELECT extract(epoch FROM clock_timestamp() - at)::float8 AS age, tokens"
            " FROM rate_limit_calls WHERE model = $1 ORDER BY at, id",
            model,
        )
        wait = wait_seconds([(r["age"], r["tokens"]) for r in rows], tokens, limit)
        if wait > 0:
            return MustWait(wait)
        row_id = await conn.fetchval(
            "INSERT INTO rate_limit_calls (model, tokens) VALUES ($1, $2) RETURNING id", model, tokens
        )
    return Granted(row_id, tokens)


async def settle(pool: asyncpg.Pool, grant: Granted, tokens: int) -> None:
    """Replace the estimate with the tokens the call was billed (0 for a failed call: the
    request still counts); unused tokens go back to the window at once."""
    await pool.execute("UPDATE rate_limit_calls SET tokens = $2, settled = true WHERE id = $1", grant.id, tokens)


async def window(pool: asyncpg.Pool, model: str) -> tuple[int, int]:
    """(tokens, requests) of ``model`` in the last minute: what the limits are held against."""
    row = await pool.fetchrow(
        "SELECT coalesce(sum(tokens), 0)::bigint AS tokens, count(*) AS requests FROM rate_limit_calls"
        " WHERE model = $1 AND at > clock_timestamp() - make_interval(secs => $2)",
        model,
        HELD_SECONDS,
    )
    return row["tokens"], row["requests"]
