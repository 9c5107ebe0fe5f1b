"""Heartbeats while a long call runs, so a dead worker is noticed within the heartbeat timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

# Well inside the section activities' heartbeat timeout (workflows.shared).
HEARTBEAT_EVERY_SECONDS = 5.0


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat every few seconds while the block runs (a model call, a wait on a rate limit).

    The first beat comes after the first interval, not at once: the heartbeat timeout runs from
    the activity's start, and a beat is a call the server records, so a section done within
    the interval sends none (at the stub's speed in `wavelaunch bench throughput`, most)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
