"""A month that can wait a day goes through the Batch API (DeadlineBatchWorkflow, the month's
child) on the time-skipping server, activities replaced at the boundary: prepare, submit,
durable timers and polls, collect; what the batch did not write goes direct before the deadline."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import (
    BatchSections,
    BatchState,
    BulkClient,
    BulkCollected,
    BulkPrepared,
    DeadlineBatchRequest,
    DeliverableRequest,
    SectionRequest,
    SectionResult,
)
from domain.sections import DocumentKind
from tests.workflows.clock import cancel_between_timers, skip_until
from tests.workflows.test_deliverable import FakeDeliverableActivities
from tokenopt.service_tiers import BATCH_MARGIN, ServiceTier
from workflows.deadline_batch import DeadlineBatchWorkflow
from workflows.deliverable import DeliverableWorkflow


class FakeBatchActivities(FakeDeliverableActivities):
    """The month's fakes plus the batch's: the batch completes after ``polls_to_complete`` looks
    and answers every prepared section but those named in ``unanswered``."""

    def __init__(
        self,
        *,
        mode: str = "batch",
        polls_to_complete: int = 3,
        unanswered: tuple[str, ...] = ("m2_operational_readiness__kpis",),
        outcome: str = "completed",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.polls_to_complete = polls_to_complete
        self.unanswered = set(unanswered)
        self.outcome = outcome
        self.prepared: list[DeadlineBatchRequest] = []
        self.batched: list[str] = []
        self.submitted = self.polls = self.cancelled = self.collected = 0
        # Workflow (server) time of each direct section call, and of the cancel.
        self.direct_at: list[datetime] = []
        self.cancelled_at: datetime | None = None

    @activity.defn(name="prepare_sections_batch")
    async def prepare_sections_batch(self, request: DeadlineBatchRequest) -> BulkPrepared:
        self.prepared.append(request)
        # Brand Context is stored from an earlier month: the stored tier serves it, not the batch.
        self.batched = [s.section_key for s in request.sections if s.section_key != "brand_context"]
        return BulkPrepared(
            ref="ref-1",
            mode=self.mode,
            clients=[BulkClient(client_id=request.client_id, client_version=2)],
            to_generate=len(self.batched) if self.mode == "batch" else 0,
            reused=len(request.sections) - len(self.batched),
        )

    @activity.defn(name="submit_batch")
    async def submit_batch(self, ref: str) -> BatchState:
        self.submitted += 1
        return BatchState(batch_id="batch-1", status="validating", total=len(self.batched))

    @activity.defn(name="poll_batch")
    async def poll_batch(self, ref: str) -> BatchState:
        self.polls += 1
        if self.cancelled:
            return BatchState(batch_id="batch-1", status="cancelled", terminal=True)
        done = self.polls >= self.polls_to_complete
        return BatchState(batch_id="batch-1", status=self.outcome if done else "in_progress", terminal=done)

    @activity.defn(name="cancel_batch")
    async def cancel_batch(self, ref: str) -> BatchState:
        self.cancelled += 1
        self.cancelled_at = activity.info().current_attempt_scheduled_time
        return BatchState(batch_id="batch-1", status="cancelling")

    @activity.defn(name="collect_batch_sections")
    async def collect_batch_sections(self, ref: str) -> BatchSections:
        self.collected += 1
        answered = self.outcome == "completed" and not self.cancelled
        keys = [k for k in self.batched if answered and k not in self.unanswered]
        sections = [
            SectionResult(
                section_key=k,
                section_id=1000 + i,
                model="m",
                tier="standard",
                prompt_tokens=10,
                completion_tokens=40,
                cost=Decimal("0.00005"),
                llm_calls=1,
            )
            for i, k in enumerate(keys)
        ]
        collected = BulkCollected(stored=len(keys), failed=len(self.batched) - len(keys), cost=Decimal("0.001"))
        return BatchSections(collected=collected, sections=sections)

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        self.direct_at.append(activity.info().current_attempt_scheduled_time)
        return await super().generate_section(request)

    def all(self) -> list:
        return [
            self.prepare_deliverable,
            self.generate_section,
            self.assemble_deliverable,
            self.prepare_sections_batch,
            self.submit_batch,
            self.poll_batch,
            self.cancel_batch,
            self.collect_batch_sections,
        ]


WORKFLOWS = [DeliverableWorkflow, DeadlineBatchWorkflow]


async def run_month(env: WorkflowEnvironment, fakes: FakeBatchActivities, request: DeliverableRequest):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=fakes.all()):
        handle = await env.client.start_workflow(
            DeliverableWorkflow.run, request, id=f"deliverable-c1-m2-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        result = await handle.result()
        return result, await handle.query(DeliverableWorkflow.progress)


async def test_a_month_due_in_three_days_is_written_by_one_batch_and_the_unanswered_rest_direct(env):
    fakes = FakeBatchActivities(polls_to_complete=3)
    started = await env.get_current_time()
    result, progress = await run_month(
        env, fakes, DeliverableRequest(client_id="c1", month=2, within=timedelta(days=3), batch_poll_seconds=600)
    )
    # The child got exactly the month's requests (digest by reference, the month's catalogue),
    # and a wait that ends two hours before the deadline.
    [prepared] = fakes.prepared
    assert prepared.label == "m2" and prepared.document_kind is DocumentKind.DELIVERABLE
    assert len(prepared.sections) == 26 and {s.context_ref for s in prepared.sections} == {"digest-1"}
    deadline = started + timedelta(days=3)
    assert abs((prepared.wait_until - (deadline - BATCH_MARGIN)).total_seconds()) < 60
    # One batch, three looks, each after a durable 10-minute timer (skipped by the server).
    assert fakes.submitted == 1 and fakes.polls == 3 and fakes.collected == 1 and fakes.cancelled == 0
    assert (await env.get_current_time() - started) >= timedelta(minutes=30)
    # Direct calls only for what the batch left: Brand Context (stored tier) and the line the
    # batch did not answer, on flex (the deadline is still days away).
    assert sorted(r.section_key for r in fakes.requests) == ["brand_context", "m2_operational_readiness__kpis"]
    assert {r.service_tier for r in fakes.requests} == {ServiceTier.FLEX}
    # The month holds all 26 sections; the batch's with their own figures.
    assert len(result.sections) == 26
    from_batch = [s for s in result.sections if s.section_id >= 1000]
    assert len(from_batch) == 24 and all(s.cost == Decimal("0.00005") for s in from_batch)
    [assembled] = fakes.assembled
    assert len(assembled.sections) == 26
    assert progress.status == "completed" and {s.status for s in progress.sections} == {"done"}


async def test_a_batch_still_running_near_the_deadline_is_cancelled_and_the_month_written_direct_in_time(env):
    fakes = FakeBatchActivities(polls_to_complete=10_000)
    started = await env.get_current_time()
    result, _ = await run_month(
        env, fakes, DeliverableRequest(client_id="c1", month=2, within=timedelta(hours=30), batch_poll_seconds=3600)
    )
    deadline = started + timedelta(hours=30)
    assert fakes.submitted == 1 and fakes.cancelled == 1 and fakes.collected == 1
    assert fakes.cancelled_at is not None
    # Cancelled when the margin began (not before), everything written directly after it, in time.
    assert abs(fakes.cancelled_at - (deadline - BATCH_MARGIN)) < timedelta(minutes=1)
    assert len(fakes.requests) == 26 and len(result.sections) == 26
    assert all(fakes.cancelled_at <= at < deadline for at in fakes.direct_at)


@pytest.mark.parametrize("outcome", ["failed", "expired"])
async def test_a_failed_or_expired_batch_leaves_every_section_to_the_direct_way(env, outcome):
    fakes = FakeBatchActivities(polls_to_complete=2, outcome=outcome)
    result, _ = await run_month(env, fakes, DeliverableRequest(client_id="c1", month=2, within=timedelta(days=3)))
    assert fakes.submitted == 1 and fakes.collected == 1
    assert len(fakes.requests) == 26 and len(result.sections) == 26


async def test_without_a_batch_api_the_month_is_written_direct_on_flex(env):
    fakes = FakeBatchActivities(mode="direct")
    await run_month(env, fakes, DeliverableRequest(client_id="c1", month=2, within=timedelta(days=3)))
    assert len(fakes.prepared) == 1 and fakes.submitted == 0 and fakes.polls == 0
    assert len(fakes.requests) == 26 and {r.service_tier for r in fakes.requests} == {ServiceTier.FLEX}


async def test_a_deadline_under_a_day_and_two_hours_never_tries_the_batch(env):
    fakes = FakeBatchActivities()
    await run_month(env, fakes, DeliverableRequest(client_id="c1", month=2, within=timedelta(hours=25)))
    assert fakes.prepared == [] and len(fakes.requests) == 26


async def test_a_long_wait_continues_as_new_without_a_second_batch(env):
    fakes = FakeBatchActivities(polls_to_complete=7)
    queue = f"tq-{uuid.uuid4()}"
    now = await env.get_current_time()
    request = DeadlineBatchRequest(
        client_id="c1",
        label="m2",
        document_kind=DocumentKind.DELIVERABLE,
        sections=[
            SectionRequest(
                client_id="c1", client_version=2, section_key=k, document_sections=[k], document_kind="deliverable"
            )
            for k in ("m2_operational_readiness__kpis", "m2_operational_readiness__sops_workflows")
        ],
        wait_until=now + timedelta(days=1),
        poll_seconds=60,
        max_polls_per_run=3,
    )
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=fakes.all()):
        handle = await env.client.start_workflow(
            DeadlineBatchWorkflow.run, request, id=f"batch-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        result = await handle.result()
        described = await handle.describe()
    assert fakes.submitted == 1 and fakes.polls == 7 and fakes.collected == 1
    assert described.run_id != handle.first_execution_run_id
    assert result.polls == 7 and result.batch_id == "batch-1"
    assert [s.section_key for s in result.sections] == ["m2_operational_readiness__sops_workflows"]


async def test_cancelling_the_month_while_its_batch_waits_cancels_the_batch(env):
    fakes = FakeBatchActivities(polls_to_complete=10_000)
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=fakes.all()):
        handle = await env.client.start_workflow(
            DeliverableWorkflow.run,
            DeliverableRequest(client_id="c1", month=2, within=timedelta(days=3)),
            id=f"deliverable-c1-m2-{uuid.uuid4().hex[:6]}",
            task_queue=queue,
        )
        await skip_until(env, lambda: fakes.polls >= 2, step=60)
        with pytest.raises(WorkflowFailureError) as info:
            await cancel_between_timers(env, handle, 60)
        assert isinstance(info.value.cause, CancelledError)
        await skip_until(env, lambda: fakes.cancelled > 0, step=1)
    assert fakes.cancelled == 1 and fakes.collected == 0 and fakes.requests == []
