"""Writes that must outlive a database outage: what follows a bought answer (its usage row, the
budget settlement, the section, summary or cache entry it goes into).

Once the model has answered, giving up on a write would lose what was paid for, and a retried
attempt would buy it again. So such a write is retried here, with backoff, while Postgres is
away (connection refused, reset, shutting down, starting up), heartbeating meanwhile so Temporal
sees the activity alive, for as long as the attempt's start-to-close timeout allows. Anything
else (a bug, a constraint) fails at once, as before. What a crash of the worker loses meanwhile
is kept in the answer spool (storage.spool).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from temporalio import activity
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

T = TypeVar("T")

# "Postgres is not there right now", as opposed to a bug: worth waiting for.
TRANSIENT = (
    OSError,  # refused, reset, the socket gone
    TimeoutError,
    asyncpg.InterfaceError,  # the connection closed under us
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.InsufficientResourcesError,  # class 53: too many connections while it comes back
)
# Outside an activity (tests, tools) or when the attempt's timeout is unknown.
DEFAULT_PATIENCE_SECONDS = 60.0
# Left of the attempt's start-to-close when the last try fails, so the failure is reported
# (and the next attempt finds the spool) before Temporal times the attempt out.
MARGIN_SECONDS = 10.0
FIRST_WAIT_SECONDS = 0.25
MAX_WAIT_SECONDS = 5.0


def patience() -> float:
    """How long a write may keep retrying: what is left of the attempt's start-to-close."""
    if not activity.in_activity():
        return DEFAULT_PATIENCE_SECONDS
    info = activity.info()
    if not info.start_to_close_timeout:
        return DEFAULT_PATIENCE_SECONDS
    elapsed = (datetime.now(UTC) - info.started_time).total_seconds()
    return max(1.0, info.start_to_close_timeout.total_seconds() - elapsed - MARGIN_SECONDS)


def _waiting(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        if activity.in_activity():
            activity.heartbeat()
        err = state.outcome.exception() if state.outcome else None
        log.warning("%s: Postgres unavailable (%s); try %d, retrying", what, err, state.attempt_number)

    return before_sleep


async def persist(write: Callable[[], Awaitable[T]], what: str, *, within: float | None = None) -> T:
    """``write()``, retried while Postgres is unavailable for up to ``within`` seconds (default:
    what is left of the attempt); the last error is raised after that. ``write`` must be safe to
    run twice: its first run may have committed before the connection dropped."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
        stop=stop_after_delay(patience() if within is None else within),
        before_sleep=_waiting(what),
        reraise=True,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable")  # AsyncRetrying either returns or raises
