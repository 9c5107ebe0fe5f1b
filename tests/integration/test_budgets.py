"""Budgets on a real embedded Postgres: concurrent reservations never commit more than a limit,
settle/release, stale reservations expire, thresholds alert once, auto-pause, the guard's errors."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError

from activities.alerts import AlertConfig, AlertNotifier
from activities.budget_guard import BudgetGuard
from domain.budgets import BudgetScope, BudgetSpec, InvalidBudget, Period
from storage import alerts, budgets, usage
from storage.budgets import BudgetRefused
from storage.usage import UsageRecord
from tokenopt.service_tiers import ServiceTier

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
async def _empty(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE budgets, budget_usage, budget_reservations, alerts CASCADE")


def client_budget(client_id: str = "c1", **limits: object) -> BudgetSpec:
    return BudgetSpec(scope=BudgetScope.CLIENT, client_id=client_id, period=Period.DAILY, **limits)


async def current(pool: asyncpg.Pool, budget_id: int):
    return next(u for u in await budgets.usage(pool) if u.budget_id == budget_id)


async def test_a_new_budget_gets_the_crm_defaults_and_bad_input_changes_nothing(pool):
    use = await budgets.set_budget(pool, BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.MONTHLY))
    assert (use.token_limit, use.cost_limit, use.thresholds, use.auto_pause) == (
        1_000_000,
        50,
        [50, 75, 90, 100],
        False,
    )
    assert use.fraction == 0 and use.period_start.day == 1
    changed = await budgets.set_budget(pool, BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.MONTHLY, token_limit=5))
    assert changed.budget_id == use.budget_id and changed.token_limit == 5 and changed.cost_limit == 50
    for bad in (
        client_budget(token_limit=-1),
        client_budget(cost_limit=Decimal("-0.01")),
        client_budget(thresholds=[0, 50]),
        BudgetSpec(scope=BudgetScope.CLIENT, period=Period.DAILY),
    ):
        with pytest.raises(InvalidBudget):
            await budgets.set_budget(pool, bad)
    assert [u.budget_id for u in await budgets.usage(pool)] == [use.budget_id]


async def test_no_budget_means_no_reservation(pool):
    assert await budgets.reserve(pool, client_id="c1", tokens=10**9, cost=Decimal(10**6)) is None


async def test_fifty_concurrent_reservations_never_commit_more_than_the_limit(pool):
    use = await budgets.set_budget(pool, client_budget(token_limit=10_000))

    async def one() -> budgets.Reservation | None:
        try:
            return await budgets.reserve(pool, client_id="c1", tokens=700, cost=Decimal("0.001"))
        except BudgetRefused:
            return None

    results = await asyncio.gather(*(one() for _ in range(50)))
    admitted = [r for r in results if r is not None]
    assert len(admitted) == 10_000 // 700  # every call tried, so exactly as many as fit
    now = await current(pool, use.budget_id)
    assert now.tokens_reserved == 700 * len(admitted) <= 10_000
    peak_tokens, _ = await budgets.peak(pool, use.budget_id)
    assert peak_tokens <= 10_000

    # Settling replaces each estimate with what was billed.
    await asyncio.gather(*(budgets.settle(pool, r, tokens=500, cost=Decimal("0.0005")) for r in admitted))
    now = await current(pool, use.budget_id)
    assert (now.tokens_used, now.tokens_reserved, now.cost_reserved) == (500 * len(admitted), 0, 0)
    assert now.cost_used == Decimal("0.0005") * len(admitted)
    # A settled reservation settles once.
    await budgets.settle(pool, admitted[0], tokens=500, cost=Decimal(0))
    assert (await current(pool, use.budget_id)).tokens_used == 500 * len(admitted)


async def test_every_applicable_budget_must_have_room(pool):
    glob = await budgets.set_budget(pool, BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.WEEKLY, token_limit=1000))
    mine = await budgets.set_budget(pool, client_budget(token_limit=300))
    r = await budgets.reserve(pool, client_id="c1", tokens=200, cost=Decimal(0))
    assert r is not None and sorted(r.budget_ids) == sorted([glob.budget_id, mine.budget_id])
    with pytest.raises(BudgetRefused, match=f"client c1 budget #{mine.budget_id}.*would go over its limit"):
        await budgets.reserve(pool, client_id="c1", tokens=200, cost=Decimal(0))
    # Another client is held only by the global budget.
    other = await budgets.reserve(pool, client_id="c2", tokens=800, cost=Decimal(0))
    assert other is not None and other.budget_ids == [glob.budget_id]
    with pytest.raises(BudgetRefused, match="global budget"):
        await budgets.reserve(pool, client_id="c2", tokens=1, cost=Decimal(0))
    # Releasing gives the estimate back.
    await budgets.release(pool, other)
    assert (await current(pool, glob.budget_id)).tokens_reserved == 200
    assert await budgets.reserve(pool, client_id="c2", tokens=800, cost=Decimal(0)) is not None


async def test_a_dollar_limit_holds_too(pool):
    await budgets.set_budget(pool, client_budget(cost_limit=Decimal("0.01")))
    assert await budgets.reserve(pool, client_id="c1", tokens=1, cost=Decimal("0.006")) is not None
    with pytest.raises(BudgetRefused, match=r"\$0\.0060 of \$0\.01"):
        await budgets.reserve(pool, client_id="c1", tokens=1, cost=Decimal("0.006"))


async def test_stale_reservations_expire_and_a_late_settle_still_counts(pool):
    use = await budgets.set_budget(pool, client_budget(token_limit=1000))
    r = await budgets.reserve(pool, client_id="c1", tokens=900, cost=Decimal(0))
    assert r is not None
    assert await budgets.expire_stale(pool, older_than_seconds=60) == 0  # fresh: kept
    await pool.execute("UPDATE budget_reservations SET created_at = now() - interval '1 hour' WHERE id = $1", r.id)
    # A refusal first gives back reservations older than the TTL (their worker died), then retries.
    again = await budgets.reserve(pool, client_id="c1", tokens=900, cost=Decimal(0), stale_after_seconds=60)
    assert again is not None
    state = await pool.fetchval("SELECT state FROM budget_reservations WHERE id = $1", r.id)
    assert state == "expired"
    assert (await current(pool, use.budget_id)).tokens_reserved == 900
    # The "dead" call finished after all: what it was billed is counted, nothing is given back twice.
    await budgets.settle(pool, r, tokens=400, cost=Decimal(0))
    now = await current(pool, use.budget_id)
    assert (now.tokens_used, now.tokens_reserved) == (400, 900)


async def test_thresholds_alert_once_per_period(pool):
    use = await budgets.set_budget(pool, client_budget(token_limit=1000, thresholds=[50, 75, 90]))
    r1 = await budgets.reserve(pool, client_id="c1", tokens=100, cost=Decimal(0))
    settled = await budgets.settle(pool, r1, tokens=800, cost=Decimal(0))  # estimate short: 80% used
    assert [a.threshold for a in settled.alerts] == [50, 75]
    r2 = await budgets.reserve(pool, client_id="c1", tokens=100, cost=Decimal(0))
    settled = await budgets.settle(pool, r2, tokens=100, cost=Decimal(0))
    assert [a.threshold for a in settled.alerts] == [90]
    assert sorted(a.threshold for a in await alerts.recent(pool)) == [50, 75, 90]
    assert all(a.budget_id == use.budget_id and a.kind == "budget_threshold" for a in await alerts.recent(pool))


async def test_auto_pause_at_the_limit_until_resumed(pool):
    use = await budgets.set_budget(pool, client_budget(token_limit=1000, auto_pause=True))
    assert await budgets.reserve(pool, client_id="c1", tokens=600, cost=Decimal(0)) is not None
    with pytest.raises(BudgetRefused, match="reached its limit and is now paused") as refused:
        await budgets.reserve(pool, client_id="c1", tokens=600, cost=Decimal(0))
    assert refused.value.paused and [a.threshold for a in refused.value.alerts] == [100]
    # Paused: even a call that would fit is refused.
    with pytest.raises(BudgetRefused, match="is paused") as refused:
        await budgets.reserve(pool, client_id="c1", tokens=1, cost=Decimal(0))
    assert refused.value.paused
    assert (await current(pool, use.budget_id)).paused
    await budgets.set_budget(pool, client_budget(token_limit=5000))
    [resumed] = await budgets.set_paused(pool, BudgetScope.CLIENT, "c1", None, paused=False)
    assert not resumed.paused
    assert await budgets.reserve(pool, client_id="c1", tokens=600, cost=Decimal(0)) is not None


async def test_the_guard_raises_the_budget_errors_workflows_act_on(pool):
    notifier = AlertNotifier(pool, AlertConfig())
    await budgets.set_budget(pool, client_budget(token_limit=1000))
    guard = BudgetGuard(pool, notifier, on_pause="fail")
    async with guard.spend(client_id="c1", model="gpt-4.1-nano", prompt_tokens=100, max_completion_tokens=400) as s:
        assert s.estimate.tokens == 500 and s.estimate.cost > 0
        s.settle(100, 0, 200, Decimal("0.0001"))
    with pytest.raises(ApplicationError) as err:
        async with guard.spend(client_id="c1", model="gpt-4.1-nano", prompt_tokens=100, max_completion_tokens=800):
            pytest.fail("a refused call must not run")
    assert err.value.type == "BudgetExceeded" and err.value.non_retryable
    assert "would go over its limit" in str(err.value)
    # A call that raises is released, not billed.
    with pytest.raises(RuntimeError):
        async with guard.spend(client_id="c1", model="gpt-4.1-nano", prompt_tokens=100, max_completion_tokens=100):
            raise RuntimeError("the LLM call failed")
    [use] = await budgets.usage(pool)
    assert (use.tokens_used, use.tokens_reserved) == (300, 0)

    await budgets.set_paused(pool, BudgetScope.CLIENT, "c1", Period.DAILY, paused=True)
    for on_pause in ("wait", "fail"):
        with pytest.raises(ApplicationError) as err:
            async with BudgetGuard(pool, notifier, on_pause=on_pause).spend(
                client_id="c1", model="gpt-4.1-nano", prompt_tokens=1, max_completion_tokens=1
            ):
                pass
        assert err.value.type == "BudgetPaused" and err.value.details[0]["on_pause"] == on_pause


async def test_a_flex_call_reserves_at_the_flex_price(pool):
    notifier = AlertNotifier(pool, AlertConfig())
    await budgets.set_budget(pool, client_budget(cost_limit=Decimal("100")))
    guard = BudgetGuard(pool, notifier)
    held = {}
    for tier in ServiceTier:
        async with guard.spend(
            client_id="c1", model="gpt-5-mini", prompt_tokens=1000, max_completion_tokens=4000, tier=tier
        ) as s:
            [use] = await budgets.usage(pool)
            held[tier] = use.cost_reserved
            assert held[tier] == s.estimate.cost
    assert held[ServiceTier.FLEX] == held[ServiceTier.BATCH] == held[ServiceTier.STANDARD] / 2 > 0


async def record_sections(pool: asyncpg.Pool, hits: int, misses: int) -> None:
    for i in range(hits + misses):
        tier = "exact" if i < hits else "none"
        await usage.record(
            pool, UsageRecord(operation="generate_section", model="m", cache_hit=tier != "none", cache_tier=tier)
        )


def hit_rate_notifier(pool: asyncpg.Pool, target: float) -> AlertNotifier:
    return AlertNotifier(pool, AlertConfig(cache_hit_rate_target=target, cache_min_sections=10))


async def test_a_low_cache_hit_rate_alerts_once_a_day(pool):
    await pool.execute("TRUNCATE usage_ledger")
    await record_sections(pool, hits=2, misses=6)
    assert await hit_rate_notifier(pool, 0.6).check_cache_hit_rate() is None  # 8 requests: too few to judge
    await record_sections(pool, hits=3, misses=0)
    alert = await hit_rate_notifier(pool, 0.6).check_cache_hit_rate()
    assert alert is not None and alert.kind == "cache_hit_rate"
    assert "cache hit rate 45%" in alert.message and "5 of 11 section requests" in alert.message
    assert await hit_rate_notifier(pool, 0.6).check_cache_hit_rate() is None  # once per day
    await pool.execute("DELETE FROM alerts")
    assert await hit_rate_notifier(pool, 0.4).check_cache_hit_rate() is None  # at or above target: nothing


def quick_retries(url: str) -> AlertConfig:
    return AlertConfig(webhook_url=url, timeout_seconds=2, attempts=3, retry_base_seconds=0.01)


@contextlib.contextmanager
def scripted_receiver(statuses: list[int]) -> Iterator[tuple[str, list[str]]]:
    """A local endpoint answering POSTs with ``statuses`` in turn (then 204); yields its URL and
    the X-Webhook-ID of every POST it received."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["X-Webhook-ID"])
            self.send_response(statuses[len(seen) - 1] if len(seen) <= len(statuses) else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", seen
    finally:
        server.shutdown()
        server.server_close()


async def deliver_one(pool: asyncpg.Pool, config: AlertConfig):
    alert = await alerts.insert(pool, kind="cache_hit_rate", dedupe_key="k", message="low")
    notifier = AlertNotifier(pool, config)
    notifier.raised([alert])
    await notifier.drain()
    [stored] = await alerts.recent(pool)
    return alert, stored


async def test_a_failed_delivery_is_retried_then_recorded_on_the_alert(pool, unused_tcp_port):
    _, stored = await deliver_one(pool, quick_retries(f"http://127.0.0.1:{unused_tcp_port}/"))
    assert not stored.delivered and "webhook delivery failed" in stored.delivery_error


async def test_a_transient_refusal_is_retried_under_the_same_delivery_id(pool):
    with scripted_receiver([503, 429]) as (url, seen):
        alert, stored = await deliver_one(pool, quick_retries(url))
    assert seen == [f"alert_{alert.id}"] * 3
    assert stored.delivered and stored.delivery_error is None


async def test_a_client_error_is_not_retried(pool):
    with scripted_receiver([400]) as (url, seen):
        _, stored = await deliver_one(pool, quick_retries(url))
    assert len(seen) == 1
    assert not stored.delivered and "webhook answered 400" in stored.delivery_error
