"""The bare Temporal baseline of `wavelaunch bench throughput`: a workflow fanning out one
activity per section that only sleeps as long as our section took, then returns. What a plan
costs beyond this is our orchestration (prepare, storage, ledger, assemble)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bare_sleep")
async def bare_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workflow.defn(name="BareFanout")
class BareFanout:
    @workflow.run
    async def run(self, seconds: list[float]) -> float:
        done = await asyncio.gather(
            *(workflow.execute_activity(bare_sleep, s, start_to_close_timeout=timedelta(minutes=5)) for s in seconds)
        )
        return max(done)
