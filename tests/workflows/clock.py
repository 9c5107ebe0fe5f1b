"""Moving the time-skipping server's clock in the workflow tests, bounded and clear of timers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

T = TypeVar("T")


async def skip_until(env: WorkflowEnvironment, done: Callable[[], bool], *, step: float, most: int = 50) -> None:
    """Skip ``step`` seconds at a time until ``done()``; fail after ``most`` steps instead of
    spinning forever when the workflow never gets there."""
    for _ in range(most):
        if done():
            return
        await env.sleep(step)
    assert done(), f"not reached after {most} skips of {step} s"


async def cancel_between_timers(env: WorkflowEnvironment, handle: WorkflowHandle, poll_seconds: float) -> None:
    """Cancel a workflow that polls on a timer, and wait for it to end, with no timer due.

    A cancel that meets a timer's firing in one workflow task makes the test server refuse the
    task's CancelTimer and never hand the task out again (temporalio/sdk-java#2606; a real server
    takes it). After ``skip_until`` with ``step=poll_seconds`` the clock stands where a timer
    fires, so the cancel goes half an interval on, and the clock is not skipped while the
    cancellation runs (it needs no timer)."""
    await env.sleep(poll_seconds / 2)
    with env.auto_time_skipping_disabled():
        await handle.cancel()
        await within(handle.result())


async def within(awaitable: Awaitable[T], seconds: float = 60) -> T:
    """``awaitable``, or a clear failure after ``seconds`` of real time instead of a hung test."""
    return await asyncio.wait_for(awaitable, seconds)
