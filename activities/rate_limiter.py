"""The provider rate limits every direct LLM call takes a place under (storage.rate_limits), so
a busy account's workers wait their turn instead of collecting 429s.

    async with limiter.hold(model, estimated_tokens) as slot:
        completion = await llm.complete_json(...)
        slot.settle(completion.prompt_tokens + completion.completion_tokens)

A short wait (at most ``max_inline_wait_seconds``) happens inside the activity, which heartbeats
meanwhile; a longer one raises ``RateLimited`` (non-retryable, so it spends none of the
activity's attempts) carrying the wait, and the workflow sleeps on a durable timer, showing the
section as waiting, then runs it again (workflows/fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import asyncpg
from temporalio.exceptions import ApplicationError

from activities.durable import persist
from activities.errors import ErrorType
from domain.rate_limits import ModelLimit
from storage import rate_limits
from storage.rate_limits import Granted

log = logging.getLogger(__name__)


def rate_limited(model: str, seconds: float) -> ApplicationError:
    """Temporal's view of a long wait: the workflow waits ``retry_after_seconds`` durably."""
    return ApplicationError(
        f"waiting {seconds:.0f} s for {model}'s rate limit",
        {"model": model, "retry_after_seconds": round(seconds, 3)},
        type=ErrorType.RATE_LIMITED.value,
        non_retryable=True,
    )


@dataclass
class Slot:
    """One call's place under the limits; ``settle`` records the tokens it was billed."""

    grant: Granted | None
    tokens: int | None = None

    def settle(self, tokens: int) -> None:
        self.tokens = tokens


class RateLimiter:
    def __init__(self, pool: asyncpg.Pool, limits: Mapping[str, ModelLimit], *, max_inline_wait_seconds: float = 20.0):
        self.pool = pool
        self.limits = {model: limit for model, limit in limits.items() if not limit.unlimited}
        self.max_inline_wait_seconds = max_inline_wait_seconds

    @contextlib.asynccontextmanager
    async def hold(self, model: str, tokens: int) -> AsyncIterator[Slot]:
        """Take a place for one call of ``model`` holding ``tokens`` (see the module docstring);
        the billed tokens replace them when the block exits (none settled: the call failed, its
        tokens go back and its request still counts)."""
        limit = self.limits.get(model)
        if limit is None:
            yield Slot(None)
            return
        waited = 0.0
        while True:
            outcome = await rate_limits.reserve(self.pool, model, tokens, limit)
            if isinstance(outcome, Granted):
                break
            if waited + outcome.seconds > self.max_inline_wait_seconds:
                log.info("%s: rate limit, the section waits %.1f s in the workflow", model, outcome.seconds)
                raise rate_limited(model, outcome.seconds)
            # The activity heartbeats meanwhile (activities.heartbeat).
            await asyncio.sleep(outcome.seconds)
            waited += outcome.seconds
        slot = Slot(outcome)
        try:
            yield slot
        finally:
            billed = slot.tokens or 0
            try:
                await persist(lambda: rate_limits.settle(self.pool, outcome, billed), "rate limit settlement")
            except Exception as err:  # noqa: BLE001 - never lose a bought answer to the limiter
                # The estimate then stays held until it leaves the window (a minute): harmless.
                log.warning("rate limit settlement failed (%s); the estimate ages out of the window", err)
