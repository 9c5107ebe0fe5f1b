"""A section refused by a paused budget: the workflow waits durably for `budget_resumed` (or its
long re-check timeout), then runs the section again; configured to fail, it fails."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import DeliverableRequest, PlanRequest, SectionRequest, SectionResult, SectionStatus
from domain.sections import Level
from tests.workflows.test_business_plan import FakeActivities
from tests.workflows.test_deliverable import FakeDeliverableActivities
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.fanout import BUDGET_RESUMED
from workflows.shared import BUDGET_RECHECK_AFTER


class PausingActivities(FakeActivities):
    """Sections are refused as paused until ``paused`` is cleared (or ``times`` refusals)."""

    def __init__(self, on_pause: str = "wait", times: int | None = None):
        super().__init__()
        self.on_pause = on_pause
        self.times = times
        self.paused = True
        self.refusals = 0

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        if self.paused and (self.times is None or self.refusals < self.times):
            self.refusals += 1
            raise ApplicationError(
                "budget paused: the daily global budget #1 is paused",
                {"budget_id": 1, "on_pause": self.on_pause},
                type="BudgetPaused",
                non_retryable=True,
            )
        return await super().generate_section(request)


def worker(env: WorkflowEnvironment, fakes: FakeActivities, queue: str) -> Worker:
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[BusinessPlanWorkflow],
        activities=[fakes.prepare_plan, fakes.generate_section, fakes.assemble_document],
    )


async def start_plan(env: WorkflowEnvironment, queue: str) -> WorkflowHandle:
    return await env.client.start_workflow(
        BusinessPlanWorkflow.run,
        PlanRequest(client_id="c1", level=Level.ESSENTIAL),
        id=f"plan-{uuid.uuid4()}",
        task_queue=queue,
    )


async def test_paused_sections_wait_for_the_signal_then_run_again(env):
    fakes = PausingActivities()
    queue = f"tq-{uuid.uuid4()}"
    async with worker(env, fakes, queue):
        handle = await start_plan(env, queue)
        while True:
            progress = await handle.query(BusinessPlanWorkflow.progress)
            if progress and progress.status == "paused" and progress.count(SectionStatus.PAUSED) == 3:
                break
            await asyncio.sleep(0.05)
        assert fakes.refusals == 3 and fakes.generated == []
        fakes.paused = False
        await handle.signal(BUDGET_RESUMED)
        result = await handle.result()
        progress = await handle.query(BusinessPlanWorkflow.progress)
    assert len(result.sections) == 3 and sorted(fakes.generated) == sorted(s.section_key for s in result.sections)
    assert progress.status == "completed" and all(s.error is None for s in progress.sections)


async def test_without_a_signal_a_paused_section_tries_again_after_the_recheck_timeout(env):
    fakes = PausingActivities(times=1)
    queue = f"tq-{uuid.uuid4()}"
    async with worker(env, fakes, queue):
        handle = await start_plan(env, queue)
        result = await handle.result()  # the time-skipping server fires the timer at once
    assert fakes.refusals == 1 and len(result.sections) == 3
    history = await handle.fetch_history()
    timers = [
        e.timer_started_event_attributes for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert [t.start_to_fire_timeout.ToTimedelta() for t in timers] == [BUDGET_RECHECK_AFTER]


async def test_configured_to_fail_the_plan_fails_with_the_budget_error(env):
    fakes = PausingActivities(on_pause="fail")
    queue = f"tq-{uuid.uuid4()}"
    async with worker(env, fakes, queue):
        handle = await start_plan(env, queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert info.value.cause.type == "SectionsFailed"
    assert "3 of 3 sections" in str(info.value.cause) and "budget paused" in str(info.value.cause)
    assert fakes.refusals == 3


class PausedTemplateActivities(FakeActivities):
    """The template call made while assembling is refused once by a paused budget."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 0

    @activity.defn(name="assemble_document")
    async def assemble_document(self, request):
        if not self.refusals:
            self.refusals += 1
            raise ApplicationError("budget paused", {"on_pause": "wait"}, type="BudgetPaused", non_retryable=True)
        return await super().assemble_document(request)


async def test_a_paused_budget_while_assembling_waits_too(env):
    fakes = PausedTemplateActivities()
    queue = f"tq-{uuid.uuid4()}"
    async with worker(env, fakes, queue):
        handle = await start_plan(env, queue)
        result = await handle.result()
        progress = await handle.query(BusinessPlanWorkflow.progress)
    assert fakes.refusals == 1 and len(fakes.assembled) == 1 and result.document.document_id == 7
    assert len(fakes.generated) == 3 and progress.status == "completed"


class PausingDeliverableActivities(FakeDeliverableActivities):
    """Brand Context is refused once by a paused budget; the resume signal lets it run again."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 0

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        if not self.refusals:
            self.refusals += 1
            raise ApplicationError("budget paused", {"on_pause": "wait"}, type="BudgetPaused", non_retryable=True)
        return await super().generate_section(request)


async def test_a_deliverable_waits_for_the_signal_too(env):
    fakes = PausingDeliverableActivities()
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[DeliverableWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            DeliverableWorkflow.run,
            DeliverableRequest(client_id="c1", month=1),
            id=f"d-{uuid.uuid4()}",
            task_queue=queue,
        )
        while True:
            progress = await handle.query(DeliverableWorkflow.progress)
            if progress is not None and progress.status == "paused":
                break
            await asyncio.sleep(0.05)
        await handle.signal(BUDGET_RESUMED)
        result = await handle.result()
    assert fakes.refusals == 1 and len(result.documents) == 5 and len(fakes.requests) == 26
