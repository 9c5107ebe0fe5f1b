"""The one place every LLM call passes through for budgets: reserve the call's upper-bound
estimate before it, settle the billed usage after it, release it if the call fails.

    async with guard.spend(client_id=..., model=..., prompt_tokens=..., max_completion_tokens=...) as spend:
        completion = await llm.complete_json(...)
        spend.settle(prompt_tokens, cached_tokens, completion_tokens, cost)

A refused call raises a non-retryable ApplicationError: ``BudgetPaused`` (the budget has
auto-pause, or was paused by an operator; its details say whether the workflow should wait for
``budget resume`` or fail) or ``BudgetExceeded`` (no auto-pause: the call would go over the
limit).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import asyncpg
from temporalio.exceptions import ApplicationError

from activities.alerts import AlertNotifier
from activities.durable import persist
from activities.errors import ErrorType
from storage import budgets
from storage.budgets import BudgetRefused, Reservation
from storage.spool import Settlement
from tokenopt.estimate import CallEstimate, estimate_call
from tokenopt.service_tiers import ServiceTier

log = logging.getLogger(__name__)

OnPause = Literal["wait", "fail"]


@dataclass
class Spend:
    """One call's hold on the budgets; ``settle`` records what the call was billed."""

    estimate: CallEstimate
    reservation: Reservation | None
    tokens: int | None = None
    cost: Decimal | None = None

    def settle(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int, cost: Decimal) -> None:
        """The call's billed usage (cached prompt tokens are tokens too; their lower price is in
        ``cost``). Written when the ``spend`` block exits."""
        del cached_tokens  # counted within prompt_tokens; kept in the signature for the ledger's sake
        self.tokens = prompt_tokens + completion_tokens
        self.cost = cost

    def settlement(self) -> Settlement | None:
        """The settlement owed once ``settle`` was called (the answer spool keeps it until the
        block's exit has written it); None when nothing is held."""
        if self.reservation is None or self.tokens is None or self.cost is None:
            return None
        return Settlement(reservation_id=self.reservation.id, tokens=self.tokens, cost=self.cost)


def budget_error(refused: BudgetRefused, on_pause: OnPause) -> ApplicationError:
    """Temporal's view of a refusal: non-retryable; a pause tells the workflow whether to wait."""
    if refused.paused:
        return ApplicationError(
            f"budget paused: {refused}",
            {"budget_id": refused.use.budget_id, "on_pause": on_pause},
            type=ErrorType.BUDGET_PAUSED.value,
            non_retryable=True,
        )
    return ApplicationError(
        f"budget exceeded: {refused}",
        {"budget_id": refused.use.budget_id},
        type=ErrorType.BUDGET_EXCEEDED.value,
        non_retryable=True,
    )


class BudgetGuard:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: AlertNotifier,
        *,
        free_models: frozenset[str] = frozenset(),
        on_pause: OnPause = "wait",
        stale_after_seconds: float = 1200.0,
        reserve_estimate: bool = True,
    ):
        self.pool = pool
        self.notifier = notifier
        self.free_models = free_models
        self.on_pause = on_pause
        self.stale_after_seconds = stale_after_seconds
        # False only in the budget benchmark's "check only" arm: hold nothing while a call runs,
        # i.e. check ``used <= limit`` and count the bill afterwards, the way that overshoots.
        self.reserve_estimate = reserve_estimate

    @contextlib.asynccontextmanager
    async def spend(
        self,
        *,
        client_id: str | None,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        tier: ServiceTier = ServiceTier.STANDARD,
    ) -> AsyncIterator[Spend]:
        """Hold the call's estimate, at the price of the service tier it goes on, for the
        duration of the block (see the module docstring)."""
        estimate = estimate_call(
            model,
            prompt_tokens=prompt_tokens,
            max_completion_tokens=max_completion_tokens,
            free_models=self.free_models,
            tier=tier,
        )
        try:
            reservation = await budgets.reserve(
                self.pool,
                client_id=client_id,
                tokens=estimate.tokens if self.reserve_estimate else 0,
                cost=estimate.cost if self.reserve_estimate else Decimal(0),
                stale_after_seconds=self.stale_after_seconds,
            )
        except BudgetRefused as refused:
            self.notifier.raised(refused.alerts)
            log.warning("LLM call refused: %s", refused)
            raise budget_error(refused, self.on_pause) from None
        spend = Spend(estimate, reservation)
        try:
            yield spend
        finally:
            if reservation is not None:
                await self._close(spend, reservation)

    async def _close(self, spend: Spend, reservation: Reservation) -> None:
        # Both are idempotent and retried while Postgres is away: a call that was answered must
        # not be lost to a failed settlement, nor a failed call leave its estimate held.
        if spend.tokens is None or spend.cost is None:
            await persist(lambda: budgets.release(self.pool, reservation), "budget release")
            return
        if self.reserve_estimate and (spend.tokens > reservation.tokens or spend.cost > reservation.cost):
            log.warning(
                "a call billed more than its estimate (%d tokens / $%s against %d / $%s): budgets may overshoot",
                spend.tokens,
                spend.cost,
                reservation.tokens,
                reservation.cost,
            )
        tokens, cost = spend.tokens, spend.cost
        settled = await persist(
            lambda: budgets.settle(self.pool, reservation, tokens=tokens, cost=cost), "budget settlement"
        )
        self._after(settled)

    def _after(self, settled: budgets.Settled) -> None:
        self.notifier.raised(settled.alerts)
        for use in settled.paused:
            log.warning("the %s reached its limit and is paused", use.label())

    async def settle_reservation(self, settlement: Settlement) -> None:
        """Settle a reservation an earlier attempt held (from the answer spool); a reservation
        settled already is left as it is."""
        try:
            reservation = await budgets.reservation(self.pool, settlement.reservation_id)
        except LookupError:
            return
        self._after(await budgets.settle(self.pool, reservation, tokens=settlement.tokens, cost=settlement.cost))

    # -- Batch API submissions: held while the batch runs, settled when it is collected ---------
    async def hold_batch(self, estimates: dict[str, CallEstimate], *, hold_hours: float) -> dict[str, int]:
        """Reserve each client's share of a batch (the sum of its lines' estimates) for up to
        ``hold_hours``; client id -> reservation id (clients no budget applies to are left out).
        All or nothing: a refusal gives back what was held and raises the budget error."""
        until = datetime.now(UTC) + timedelta(hours=hold_hours)
        held: dict[str, Reservation] = {}
        try:
            for client_id, estimate in sorted(estimates.items()):
                reservation = await budgets.reserve(
                    self.pool,
                    client_id=client_id,
                    tokens=estimate.tokens,
                    cost=estimate.cost,
                    stale_after_seconds=self.stale_after_seconds,
                    hold_until=until,
                )
                if reservation is not None:
                    held[client_id] = reservation
        except BudgetRefused as refused:
            for reservation in held.values():
                await budgets.release(self.pool, reservation)
            self.notifier.raised(refused.alerts)
            log.warning("batch refused: %s", refused)
            raise budget_error(refused, self.on_pause) from None
        return {client_id: r.id for client_id, r in held.items()}

    async def settle_batch(self, holds: dict[str, int], billed: dict[str, tuple[int, Decimal]]) -> None:
        """Replace each client's hold with what its lines billed (nothing billed: given back)."""
        for client_id, reservation_id in holds.items():
            tokens, cost = billed.get(client_id, (0, Decimal(0)))
            await persist(
                functools.partial(
                    self.settle_reservation, Settlement(reservation_id=reservation_id, tokens=tokens, cost=cost)
                ),
                "batch budget settlement",
            )
