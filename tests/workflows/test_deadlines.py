"""Deadlines on the time-skipping server: a scheduled month's run carries its deadline (counted
from the run's start) into every section, which then may go on flex; an interactive run stays on
standard. (The time-skipping server does not implement Schedules, so the schedules themselves
are tested on the dev server: tests/e2e/test_schedules_e2e.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import DeliverableRequest
from tests.workflows.test_deliverable import FakeDeliverableActivities
from tokenopt.service_tiers import ServiceTier
from workflows.deliverable import DeliverableWorkflow


async def run_month(env: WorkflowEnvironment, request: DeliverableRequest) -> FakeDeliverableActivities:
    fake = FakeDeliverableActivities()
    queue = f"q-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[DeliverableWorkflow], activities=fake.all()):
        await env.client.execute_workflow(
            DeliverableWorkflow.run, request, id=f"deliverable-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
    return fake


async def test_a_run_due_within_hours_writes_every_section_on_flex(env: WorkflowEnvironment) -> None:
    # Under a day (and the batch margin) away: no Batch API (tests/workflows/test_deadline_batch.py).
    before = await env.get_current_time()
    fake = await run_month(env, DeliverableRequest(client_id="c1", month=2, within=timedelta(hours=20)))
    after = await env.get_current_time()
    assert {r.service_tier for r in fake.requests} == {ServiceTier.FLEX}
    [deadline] = {r.deadline for r in fake.requests}
    assert deadline is not None
    # Counted from the run's start on the test server's clock (which other tests' timers may
    # skip ahead while this one runs), fixed for the whole run.
    assert before + timedelta(hours=20) - timedelta(seconds=1) <= deadline <= after + timedelta(hours=20)


async def test_an_interactive_run_stays_on_standard(env: WorkflowEnvironment) -> None:
    fake = await run_month(env, DeliverableRequest(client_id="c1", month=2))
    assert {(r.service_tier, r.deadline) for r in fake.requests} == {(ServiceTier.STANDARD, None)}


async def test_a_deadline_minutes_away_is_standard(env: WorkflowEnvironment) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    fake = await run_month(env, DeliverableRequest(client_id="c1", month=1, deadline=soon))
    assert {r.service_tier for r in fake.requests} == {ServiceTier.STANDARD}
    assert {r.deadline for r in fake.requests} == {soon}
