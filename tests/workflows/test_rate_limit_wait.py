"""A section refused by the provider's rate limit (``RateLimited``, the wait in its details):
the workflow shows it as waiting, sleeps on a durable timer of that length, then runs it again,
without spending the activity's retry attempts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from activities.rate_limiter import rate_limited
from contracts.models import PlanRequest, SectionRequest, SectionResult, SectionStatus
from domain.sections import Level
from tests.workflows.test_business_plan import FakeActivities
from workflows.business_plan import BusinessPlanWorkflow


class LimitedActivities(FakeActivities):
    """Every section is refused ``times`` times with a 90 s wait, then written."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.refusals: dict[str, int] = {}

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        seen = self.refusals.get(request.section_key, 0)
        if seen < self.times:
            self.refusals[request.section_key] = seen + 1
            raise rate_limited("gpt-4.1", 90.0)
        return await super().generate_section(request)


async def test_a_rate_limited_section_waits_on_a_timer_shown_as_waiting_then_runs(env):
    fakes = LimitedActivities(times=2)
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[BusinessPlanWorkflow],
        activities=[fakes.prepare_plan, fakes.generate_section, fakes.assemble_document],
    ):
        # Without time skipping the timers hold, so the waiting rows can be seen.
        with env.auto_time_skipping_disabled():
            handle = await env.client.start_workflow(
                BusinessPlanWorkflow.run,
                PlanRequest(client_id="c1", level=Level.ESSENTIAL),
                id=f"plan-{uuid.uuid4()}",
                task_queue=queue,
            )
            for _ in range(200):
                progress = await handle.query(BusinessPlanWorkflow.progress)
                if progress and progress.count(SectionStatus.WAITING) == 3:
                    break
                await asyncio.sleep(0.05)
            assert progress.count(SectionStatus.WAITING) == 3
            assert all("rate limit" in (s.error or "") for s in progress.sections)
        result = await handle.result()
        progress = await handle.query(BusinessPlanWorkflow.progress)
    assert len(result.sections) == 3 and sorted(fakes.refusals.values()) == [2, 2, 2]
    assert progress.status == "completed" and all(s.error is None for s in progress.sections)
    history = await handle.fetch_history()
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [timedelta(seconds=90)] * 6
    # Each refusal was one attempt of its own activity: no retry attempts spent on waiting.
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert set(attempts) == {1}
