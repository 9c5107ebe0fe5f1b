"""Provider rate limits on a real embedded Postgres: concurrent callers (separate pools, as
separate workers) never hold more than a model's tokens or requests per minute; settling gives
unused tokens back at once; the limiter waits briefly inside, and refuses a long wait with
``RateLimited``."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError

from activities.rate_limiter import RateLimiter
from domain.rate_limits import ModelLimit
from storage import db, rate_limits
from storage.rate_limits import Granted, MustWait

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
async def _empty(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE rate_limit_calls")


async def test_two_workers_reserving_at_once_never_exceed_the_token_or_request_limit(pool, database_url):
    limit = ModelLimit(tokens_per_minute=10_000, requests_per_minute=30)
    other = await db.connect(database_url, min_size=2, max_size=10)  # a second worker's pool
    try:

        async def caller(p: asyncpg.Pool, tokens: int) -> list[Granted]:
            granted = []
            for _ in range(25):
                outcome = await rate_limits.reserve(p, "gpt-4.1", tokens, limit)
                if isinstance(outcome, Granted):
                    granted.append(outcome)
            return granted

        # Ten concurrent callers per worker, 50 tries each worker... far more than fits.
        results = await asyncio.gather(*(caller(p, 700) for p in [pool, other] * 5))
    finally:
        await other.close()
    granted = [g for r in results for g in r]
    tokens, requests = await rate_limits.window(pool, "gpt-4.1")
    assert requests == len(granted) and tokens == sum(g.tokens for g in granted)
    # 700-token calls: 14 fit under 10,000 tokens (the request limit, 30, is not the binding one).
    assert len(granted) == 14 and tokens == 9_800
    refused = await rate_limits.reserve(pool, "gpt-4.1", 700, limit)
    assert isinstance(refused, MustWait) and 0 < refused.seconds <= 61.5


async def test_the_request_limit_holds_for_small_calls(pool):
    limit = ModelLimit(tokens_per_minute=1_000_000, requests_per_minute=5)
    outcomes = await asyncio.gather(*(rate_limits.reserve(pool, "m", 10, limit) for _ in range(12)))
    assert sum(isinstance(o, Granted) for o in outcomes) == 5
    assert (await rate_limits.window(pool, "m"))[1] == 5


async def test_settling_gives_unused_tokens_back_at_once(pool):
    limit = ModelLimit(tokens_per_minute=5_000)
    first = await rate_limits.reserve(pool, "gpt-4.1-mini", 4_000, limit)
    assert isinstance(first, Granted)
    assert isinstance(await rate_limits.reserve(pool, "gpt-4.1-mini", 2_000, limit), MustWait)
    await rate_limits.settle(pool, first, 1_200)  # the call was billed far less than its estimate
    assert (await rate_limits.window(pool, "gpt-4.1-mini")) == (1_200, 1)
    second = await rate_limits.reserve(pool, "gpt-4.1-mini", 2_000, limit)
    assert isinstance(second, Granted)
    # Other models are counted apart.
    assert (await rate_limits.window(pool, "gpt-4.1")) == (0, 0)


async def test_a_call_larger_than_the_limit_goes_alone_rather_than_never(pool):
    limit = ModelLimit(tokens_per_minute=1_000)
    big = await rate_limits.reserve(pool, "m", 50_000, limit)
    assert isinstance(big, Granted) and big.tokens == 1_000


async def test_the_limiter_settles_billed_tokens_and_refuses_a_long_wait(pool):
    limiter = RateLimiter(
        pool, {"m": ModelLimit(tokens_per_minute=3_000), "free": ModelLimit()}, max_inline_wait_seconds=0.5
    )
    async with limiter.hold("m", 2_000) as slot:
        slot.settle(500)
    assert (await rate_limits.window(pool, "m")) == (500, 1)
    async with limiter.hold("m", 2_000):
        pass  # a failed call: its tokens go back, its request still counts
    assert (await rate_limits.window(pool, "m")) == (500, 2)
    async with limiter.hold("m", 2_500):
        with pytest.raises(ApplicationError) as info:
            async with limiter.hold("m", 2_500):
                pass
    assert info.value.type == "RateLimited" and info.value.non_retryable
    assert 0 < info.value.details[0]["retry_after_seconds"] <= 61.5
    # An unlimited model takes no place at all.
    async with limiter.hold("free", 10**9):
        pass
    assert (await rate_limits.window(pool, "free")) == (0, 0)
