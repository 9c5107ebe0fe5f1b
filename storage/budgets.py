"""Budgets, their per-period counters and the reservations of calls in flight.

A call reserves its estimate (an upper bound) against every budget that applies to it (the
global ones and its client's, each period) in one transaction holding the counters' row locks,
and only if ``used + reserved + estimate <= limit`` for all of them; so concurrent calls on any
number of workers never commit more than a limit. Settling replaces the estimate with the
billed usage; releasing (the call failed) or expiring (its worker died) gives it back.
Row locks are always taken in (budget id, period start) order, reservations before counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import asyncpg

from domain.budgets import (
    DEFAULT_COST_LIMIT,
    DEFAULT_THRESHOLDS,
    DEFAULT_TOKEN_LIMIT,
    Alert,
    BudgetScope,
    BudgetSpec,
    BudgetUse,
    InvalidBudget,
    Period,
    reached,
    use_fraction,
)
from storage import alerts

log = logging.getLogger(__name__)


class BudgetRefused(Exception):
    """A call was refused: a budget is paused, or the call would take it over its limit."""

    def __init__(self, message: str, *, use: BudgetUse, paused: bool, alerts: list[Alert] | None = None):
        super().__init__(message)
        self.use = use
        self.paused = paused
        self.alerts = alerts or []


@dataclass(frozen=True)
class Reservation:
    id: int
    budget_ids: list[int]
    period_starts: list[datetime]
    tokens: int
    cost: Decimal


@dataclass
class Settled:
    """What a settle changed: alerts newly raised, budgets auto-paused."""

    alerts: list[Alert] = field(default_factory=list)
    paused: list[BudgetUse] = field(default_factory=list)


# Every budget in its current period; the counters row may not exist yet.
_CURRENT = """
    SELECT b.id AS budget_id, b.scope, b.client_id, b.period, s.start AS period_start, b.token_limit, b.cost_limit,
           coalesce(u.tokens_used, 0) AS tokens_used, coalesce(u.cost_used, 0) AS cost_used,
           coalesce(u.tokens_reserved, 0) AS tokens_reserved, coalesce(u.cost_reserved, 0) AS cost_reserved,
           b.paused AND (b.paused_period_start IS NULL OR b.paused_period_start = s.start) AS paused,
           b.auto_pause, b.thresholds
    FROM budgets b
    CROSS JOIN LATERAL (SELECT budget_period_start(b.period, now()) AS start) s
    LEFT JOIN budget_usage u ON u.budget_id = b.id AND u.period_start = s.start
"""

# The counters of the given (budget, period) pairs, locked in a fixed order.
_LOCKED = """
    SELECT b.id AS budget_id, b.scope, b.client_id, b.period, u.period_start, b.token_limit, b.cost_limit,
           u.tokens_used, u.cost_used, u.tokens_reserved, u.cost_reserved,
           b.paused AND (b.paused_period_start IS NULL OR b.paused_period_start = u.period_start) AS paused,
           b.auto_pause, b.thresholds
    FROM budget_usage u
    JOIN budgets b ON b.id = u.budget_id
    JOIN unnest($1::bigint[], $2::timestamptz[]) AS k(id, start) ON k.id = u.budget_id AND k.start = u.period_start
    ORDER BY u.budget_id, u.period_start
    FOR UPDATE OF u
"""

_KEYS = "unnest($1::bigint[], $2::timestamptz[]) AS k(id, start)"


def _use(row: asyncpg.Record) -> BudgetUse:
    data = dict(row)
    data["fraction"] = use_fraction(
        data["tokens_used"] + data["tokens_reserved"],
        data["token_limit"],
        data["cost_used"] + data["cost_reserved"],
        data["cost_limit"],
    )
    return BudgetUse(**data)


# -- configuration -----------------------------------------------------------------------------
async def set_budget(pool: asyncpg.Pool, spec: BudgetSpec) -> BudgetUse:
    """Create or change the budget of ``spec``'s scope and period; unset fields keep their value
    (the CRM's defaults for a new budget). Raises InvalidBudget for bad input, changing nothing."""
    spec = spec.check()
    row = await pool.fetchrow(
        """INSERT INTO budgets (scope, client_id, period, token_limit, cost_limit, thresholds, auto_pause)
           VALUES ($1, $2, $3, coalesce($4::bigint, $8::bigint), coalesce($5::numeric, $9::numeric),
                   coalesce($6::integer[], $10::integer[]), coalesce($7::boolean, false))
           ON CONFLICT (scope, coalesce(client_id, ''), period) DO UPDATE SET
               token_limit = coalesce($4::bigint, budgets.token_limit),
               cost_limit = coalesce($5::numeric, budgets.cost_limit),
               thresholds = coalesce($6::integer[], budgets.thresholds),
               auto_pause = coalesce($7::boolean, budgets.auto_pause),
               updated_at = now()
           RETURNING id""",
        spec.scope.value,
        spec.client_id,
        spec.period.value,
        spec.token_limit,
        spec.cost_limit,
        spec.thresholds,
        spec.auto_pause,
        DEFAULT_TOKEN_LIMIT,
        DEFAULT_COST_LIMIT,
        list(DEFAULT_THRESHOLDS),
    )
    return (await _current(pool, "WHERE b.id = $1", row["id"]))[0]


def _scope_filter(scope: BudgetScope, client_id: str | None, period: Period | None) -> tuple[str, list[object]]:
    if (scope is BudgetScope.CLIENT) != bool(client_id):
        raise InvalidBudget("name either the global budgets or one client's (--global or --client ID)")
    where = ["scope = $1", "coalesce(client_id, '') = $2"]
    args: list[object] = [scope.value, client_id or ""]
    if period is not None:
        args.append(period.value)
        where.append(f"period = ${len(args)}")
    return " AND ".join(where), args


async def remove(pool: asyncpg.Pool, scope: BudgetScope, client_id: str | None, period: Period | None) -> int:
    """Delete the matching budgets (their counters and open reservations go with them)."""
    where, args = _scope_filter(scope, client_id, period)
    return len(await pool.fetch(f"DELETE FROM budgets WHERE {where} RETURNING id", *args))


async def set_paused(
    pool: asyncpg.Pool, scope: BudgetScope, client_id: str | None, period: Period | None, paused: bool
) -> list[BudgetUse]:
    """Pause (until resumed) or resume the matching budgets; the budgets changed."""
    where, args = _scope_filter(scope, client_id, period)
    rows = await pool.fetch(
        f"UPDATE budgets SET paused = {'true' if paused else 'false'}, paused_period_start = NULL, updated_at = now()"
        f" WHERE {where} RETURNING id",
        *args,
    )
    if not rows:
        who = "global" if scope is BudgetScope.GLOBAL else f"client {client_id!r}"
        raise InvalidBudget(f"no {period.value + ' ' if period else ''}{who} budget is set")
    return await _current(pool, "WHERE b.id = ANY($1::bigint[])", [r["id"] for r in rows])


async def _current(pool: asyncpg.Pool, where: str = "", *args: object) -> list[BudgetUse]:
    rows = await pool.fetch(f"{_CURRENT} {where} ORDER BY b.scope DESC, b.client_id, b.period, b.id", *args)
    return [_use(r) for r in rows]


async def usage(pool: asyncpg.Pool) -> list[BudgetUse]:
    """Every budget in its current period, global ones first."""
    return await _current(pool)


async def peak(pool: asyncpg.Pool, budget_id: int) -> tuple[int, Decimal]:
    """The highest tokens and dollars committed (used + reserved) in the budget's current period."""
    row = await pool.fetchrow(
        """SELECT u.peak_tokens, u.peak_cost FROM budgets b
           JOIN budget_usage u ON u.budget_id = b.id AND u.period_start = budget_period_start(b.period, now())
           WHERE b.id = $1""",
        budget_id,
    )
    return (row["peak_tokens"], row["peak_cost"]) if row else (0, Decimal(0))


# -- reserve, settle, release --------------------------------------------------------------------
async def reserve(
    pool: asyncpg.Pool,
    *,
    client_id: str | None,
    tokens: int,
    cost: Decimal,
    stale_after_seconds: float = 1200.0,
    hold_until: datetime | None = None,
) -> Reservation | None:
    """Hold ``tokens``/``cost`` against every budget that applies to ``client_id``; None when no
    budget applies. Raises BudgetRefused (nothing reserved) when a budget is paused or the call
    would take one over its limit; a budget with auto-pause is paused then. ``hold_until``: a
    hold that outlives ``stale_after_seconds`` on purpose (a Batch API submission)."""
    keys = await pool.fetch(
        "SELECT id, budget_period_start(period, now()) AS start FROM budgets"
        " WHERE scope = 'global' OR client_id = $1 ORDER BY id",
        client_id,
    )
    if not keys:
        return None  # the common case: no budget configured costs this one query
    ids, starts = [k["id"] for k in keys], [k["start"] for k in keys]
    try:
        try:
            return await _reserve(pool, client_id, ids, starts, tokens, cost, hold_until)
        except BudgetRefused as refused:
            # A crashed worker's reservation may be what holds the limit: give stale ones back, try once more.
            if refused.paused or not await expire_stale(pool, stale_after_seconds):
                raise
        return await _reserve(pool, client_id, ids, starts, tokens, cost, hold_until)
    except BudgetRefused as refused:
        if not refused.use.paused:  # a refusal at the limit (not an earlier pause) is the 100% alert
            refused.alerts = [a for a in [await _limit_alert(pool, refused.use)] if a]
        raise


async def _reserve(
    pool: asyncpg.Pool,
    client_id: str | None,
    ids: list[int],
    starts: list[datetime],
    tokens: int,
    cost: Decimal,
    hold_until: datetime | None = None,
) -> Reservation:
    refused: BudgetRefused | None = None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO budget_usage (budget_id, period_start) SELECT id, start FROM {_KEYS} ON CONFLICT DO NOTHING",
            ids,
            starts,
        )
        uses = [_use(r) for r in await conn.fetch(_LOCKED, ids, starts)]
        for use in uses:
            if use.paused:
                refused = BudgetRefused(
                    f"the {use.describe()} is paused; resume it with `wavelaunch budget resume`", use=use, paused=True
                )
                break
            if (
                use.tokens_used + use.tokens_reserved + tokens > use.token_limit
                or use.cost_used + use.cost_reserved + cost > use.cost_limit
            ):
                need = f"this call needs up to {tokens:,} tokens / ${cost:.4f}"
                if use.auto_pause:
                    await conn.execute(
                        "UPDATE budgets SET paused = true, paused_period_start = $2, updated_at = now() WHERE id = $1",
                        use.budget_id,
                        use.period_start,
                    )
                    message = (
                        f"the {use.describe()} reached its limit and is now paused ({need}); raise the limit "
                        "with `wavelaunch budget set` and run `wavelaunch budget resume`"
                    )
                else:
                    message = (
                        f"the {use.describe()} would go over its limit ({need}); raise it with `wavelaunch budget set`"
                    )
                refused = BudgetRefused(message, use=use, paused=use.auto_pause)
                break
        if refused is None:
            await conn.execute(
                f"""UPDATE budget_usage u SET
                        tokens_reserved = tokens_reserved + $3, cost_reserved = cost_reserved + $4,
                        peak_tokens = greatest(peak_tokens, tokens_used + tokens_reserved + $3),
                        peak_cost = greatest(peak_cost, cost_used + cost_reserved + $4)
                    FROM {_KEYS} WHERE u.budget_id = k.id AND u.period_start = k.start""",
                ids,
                starts,
                tokens,
                cost,
            )
            reservation_id = await conn.fetchval(
                """INSERT INTO budget_reservations (client_id, budget_ids, period_starts, tokens, cost, hold_until)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                client_id,
                ids,
                starts,
                tokens,
                cost,
                hold_until,
            )
    if refused is not None:
        raise refused  # after the commit: an auto-pause and its alert are kept
    return Reservation(reservation_id, ids, starts, tokens, cost)


async def settle(pool: asyncpg.Pool, reservation: Reservation, *, tokens: int, cost: Decimal) -> Settled:
    """Replace the reservation's estimate with the billed ``tokens``/``cost``; raise the alerts
    of thresholds now reached and auto-pause budgets now at their limit. A reservation expired
    meanwhile (a slow call, not a dead worker) still counts its use."""
    return await _close(pool, reservation, "settled", tokens, cost)


async def reservation(pool: asyncpg.Pool, reservation_id: int) -> Reservation:
    """A reservation by id (to settle one made by another activity: a Batch API hold)."""
    row = await pool.fetchrow(
        "SELECT id, budget_ids, period_starts, tokens, cost FROM budget_reservations WHERE id = $1", reservation_id
    )
    if row is None:
        raise LookupError(f"no budget reservation {reservation_id}")
    return Reservation(row["id"], list(row["budget_ids"]), list(row["period_starts"]), row["tokens"], row["cost"])


async def release(pool: asyncpg.Pool, reservation: Reservation) -> None:
    """Give the estimate back: the call failed and was not billed."""
    await _close(pool, reservation, "released", 0, Decimal(0))


async def _close(pool: asyncpg.Pool, r: Reservation, state: str, tokens: int, cost: Decimal) -> Settled:
    out = Settled()
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchval("SELECT state FROM budget_reservations WHERE id = $1 FOR UPDATE", r.id)
        if before not in ("reserved", "expired") or (before == "expired" and state == "released"):
            return out  # closed already (or expired and nothing to add)
        held_tokens, held_cost = (r.tokens, r.cost) if before == "reserved" else (0, Decimal(0))
        await conn.fetch(_LOCKED, r.budget_ids, r.period_starts)
        rows = await conn.fetch(
            f"""UPDATE budget_usage u SET
                    tokens_used = tokens_used + $3, cost_used = cost_used + $4,
                    tokens_reserved = tokens_reserved - $5, cost_reserved = cost_reserved - $6
                FROM {_KEYS} WHERE u.budget_id = k.id AND u.period_start = k.start
                RETURNING u.budget_id""",
            r.budget_ids,
            r.period_starts,
            tokens,
            cost,
            held_tokens,
            held_cost,
        )
        await conn.execute(
            """UPDATE budget_reservations SET state = $2, tokens_actual = $3, cost_actual = $4, closed_at = now()
               WHERE id = $1""",
            r.id,
            state,
            tokens,
            cost,
        )
        if state != "settled" or not rows:
            return out
        for use in [_use(row) for row in await conn.fetch(_LOCKED, r.budget_ids, r.period_starts)]:
            settled = use_fraction(use.tokens_used, use.token_limit, use.cost_used, use.cost_limit)
            for threshold in reached(use.thresholds, settled):
                alert = await alerts.insert(
                    conn,
                    kind="budget_threshold",
                    dedupe_key=_dedupe(use, threshold),
                    message=f"the {use.describe()}: {threshold}% of its limit reached",
                    budget_id=use.budget_id,
                    threshold=threshold,
                )
                if alert:
                    out.alerts.append(alert)
            if use.auto_pause and settled >= 1 and not use.paused:
                await conn.execute(
                    "UPDATE budgets SET paused = true, paused_period_start = $2, updated_at = now() WHERE id = $1",
                    use.budget_id,
                    use.period_start,
                )
                out.paused.append(use)
    return out


def _dedupe(use: BudgetUse, threshold: int) -> str:
    return f"budget:{use.budget_id}:{use.period_start.isoformat()}:{threshold}"


async def _limit_alert(db: asyncpg.Pool | asyncpg.Connection, use: BudgetUse) -> Alert | None:
    """A refusal is the limit reached: the 100% alert of the period, if it was not raised yet."""
    return await alerts.insert(
        db,
        kind="budget_threshold",
        dedupe_key=_dedupe(use, 100),
        message=f"the {use.describe()}: limit reached, calls are " + ("paused" if use.auto_pause else "refused"),
        budget_id=use.budget_id,
        threshold=100,
    )


async def expire_stale(pool: asyncpg.Pool, older_than_seconds: float = 1200.0) -> int:
    """Give back reservations open longer than any call can run (their worker died); how many."""
    async with pool.acquire() as conn, conn.transaction():
        stale = await conn.fetch(
            """SELECT id, budget_ids, period_starts, tokens, cost FROM budget_reservations
               WHERE state = 'reserved'
                 AND coalesce(hold_until, created_at + make_interval(secs => $1)) < now()
               ORDER BY id FOR UPDATE SKIP LOCKED""",
            older_than_seconds,
        )
        if not stale:
            return 0
        held: dict[tuple[int, datetime], tuple[int, Decimal]] = {}
        for r in stale:
            for key in zip(r["budget_ids"], r["period_starts"], strict=True):
                t, c = held.get(key, (0, Decimal(0)))
                held[key] = (t + r["tokens"], c + r["cost"])
        keys = sorted(held)
        ids, starts = [k[0] for k in keys], [k[1] for k in keys]
        await conn.fetch(_LOCKED, ids, starts)
        await conn.execute(
            """UPDATE budget_usage u
                SET tokens_reserved = tokens_reserved - h.tokens, cost_reserved = cost_reserved - h.cost
                FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::numeric[]) AS h(id, start, tokens, cost)
                WHERE u.budget_id = h.id AND u.period_start = h.start""",
            ids,
            starts,
            [held[k][0] for k in keys],
            [held[k][1] for k in keys],
        )
        await conn.execute(
            "UPDATE budget_reservations SET state = 'expired', closed_at = now() WHERE id = ANY($1::bigint[])",
            [r["id"] for r in stale],
        )
    log.warning("released %d stale budget reservation(s) older than %.0f s", len(stale), older_than_seconds)
    return len(stale)


# -- Batch API holds -------------------------------------------------------------------------------
async def record_holds(conn: asyncpg.Connection, ref: str, holds: dict[str, int]) -> None:
    """Tie a bulk request set's holds (client id -> reservation id) to it."""
    await conn.executemany(
        "INSERT INTO bulk_budget_holds (ref, client_id, reservation_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [(ref, client_id, reservation_id) for client_id, reservation_id in holds.items()],
    )


async def holds(db: asyncpg.Pool | asyncpg.Connection, ref: str) -> dict[str, int]:
    """The holds of a bulk request set: client id -> reservation id."""
    rows = await db.fetch("SELECT client_id, reservation_id FROM bulk_budget_holds WHERE ref = $1", ref)
    return {r["client_id"]: r["reservation_id"] for r in rows}
