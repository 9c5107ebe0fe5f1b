"""BulkRegenerationWorkflow on the time-skipping server, activities replaced at the boundary:
the durable timer loop (skipped by the server), continue-as-new, the direct fallback."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import (
    BatchState,
    BulkClient,
    BulkCollected,
    BulkPrepared,
    BulkRequest,
    SectionRequest,
)
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from tests.workflows.clock import cancel_between_timers, skip_until
from tests.workflows.test_business_plan import FakeActivities
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow

ESSENTIAL = [s.key for s in resolve_sections(Level.ESSENTIAL)]


class FakeBulkActivities:
    """Two clients, six sections to write; the batch completes after ``polls_to_complete`` looks
    and answers all but ``failed`` lines."""

    def __init__(
        self,
        *,
        mode: str = "batch",
        polls_to_complete: int = 3,
        failed: int = 1,
        to_generate: int = 6,
        refused_submits: int = 0,
    ):
        self.mode = mode
        self.refused_submits = refused_submits  # submissions refused by a paused budget first
        self.polls_to_complete = polls_to_complete
        self.failed = failed
        self.to_generate = to_generate
        self.submitted = 0
        self.polls = 0
        self.collected = 0
        self.cancelled = 0
        self.plan = FakeActivities()

    @activity.defn(name="prepare_bulk")
    async def prepare_bulk(self, request: BulkRequest) -> BulkPrepared:
        ids = request.client_ids or ["c1", "c2"]
        return BulkPrepared(
            ref="ref-1",
            mode=self.mode,
            clients=[BulkClient(client_id=c, client_version=3) for c in ids],
            to_generate=self.to_generate,
            reused=len(ids) * len(ESSENTIAL) - self.to_generate,
        )

    @activity.defn(name="submit_batch")
    async def submit_batch(self, ref: str) -> BatchState:
        if self.refused_submits:
            self.refused_submits -= 1
            raise ApplicationError(
                "budget paused: the daily budget of client c1 is paused",
                {"budget_id": 1, "on_pause": "wait"},
                type="BudgetPaused",
                non_retryable=True,
            )
        self.submitted += 1
        return BatchState(batch_id="batch-1", status="validating", total=self.to_generate)

    @activity.defn(name="poll_batch")
    async def poll_batch(self, ref: str) -> BatchState:
        self.polls += 1
        done = self.polls >= self.polls_to_complete
        return BatchState(
            batch_id="batch-1",
            status="completed" if done else "in_progress",
            total=self.to_generate,
            completed=self.to_generate - self.failed if done else 0,
            failed=self.failed if done else 0,
            terminal=done,
        )

    @activity.defn(name="cancel_batch")
    async def cancel_batch(self, ref: str) -> BatchState:
        self.cancelled += 1
        return BatchState(batch_id="batch-1", status="cancelling")

    @activity.defn(name="collect_batch")
    async def collect_batch(self, ref: str) -> BulkCollected:
        self.collected += 1
        return BulkCollected(stored=self.to_generate - self.failed, failed=self.failed, cost=Decimal("0.01"))

    @activity.defn(name="bulk_fallback")
    async def bulk_fallback(self, ref: str) -> list[SectionRequest]:
        count = self.to_generate if self.mode == "direct" else self.failed
        return [
            SectionRequest(client_id="c1", client_version=3, section_key=key, document_sections=ESSENTIAL)
            for key in (ESSENTIAL * 2)[:count]
        ]

    def all(self) -> list:
        return [
            self.prepare_bulk,
            self.submit_batch,
            self.poll_batch,
            self.cancel_batch,
            self.collect_batch,
            self.bulk_fallback,
            self.plan.prepare_plan,
            self.plan.generate_section,
            self.plan.assemble_document,
        ]


async def run(env: WorkflowEnvironment, fakes: FakeBulkActivities, request: BulkRequest):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[BulkRegenerationWorkflow, BusinessPlanWorkflow],
        activities=fakes.all(),
    ):
        handle = await env.client.start_workflow(
            BulkRegenerationWorkflow.run, request, id=f"bulk-{uuid.uuid4()}", task_queue=queue
        )
        result = await handle.result()
        progress = await handle.query(BulkRegenerationWorkflow.progress)
        described = await handle.describe()
        return handle, result, progress, described


async def test_the_batch_is_awaited_with_durable_timers_then_collected_and_the_rest_goes_direct(env):
    fakes = FakeBulkActivities(polls_to_complete=4)
    started = await env.get_current_time()
    _, result, progress, _ = await run(
        env, fakes, BulkRequest(client_ids=["c1", "c2"], level=Level.ESSENTIAL, poll_seconds=900)
    )
    # Four looks, each after a 15-minute timer: the time-skipping server jumped an hour ahead.
    assert fakes.polls == 4 and fakes.submitted == 1 and fakes.collected == 1
    assert (await env.get_current_time() - started).total_seconds() >= 4 * 900
    assert result.batch_id == "batch-1" and result.stored_from_batch == 5 and result.fallback == 1
    assert result.batch_cost == Decimal("0.01")
    # The one failed line went through generate_section; then each client's plan ran.
    assert fakes.plan.generated.count("executive_summary") == 1 + 2
    assert set(result.documents) == {"c1", "c2"}
    assert progress.status == "completed" and progress.polls == 4 and progress.batch_status == "completed"
    assert progress.fallback_done == 1 and progress.failed == []


async def test_a_long_wait_continues_as_new_without_a_second_batch(env):
    fakes = FakeBulkActivities(polls_to_complete=7)
    handle, result, progress, described = await run(
        env, fakes, BulkRequest(client_ids=["c1"], level=Level.ESSENTIAL, poll_seconds=60, max_polls_per_run=3)
    )
    assert fakes.submitted == 1 and fakes.polls == 7 and fakes.collected == 1
    # Runs of 3, 3 and 1 polls: the latest run is not the first.
    assert described.run_id != handle.first_execution_run_id
    assert progress.polls == 7 and result.batch_id == "batch-1"


async def test_direct_mode_writes_every_section_with_generate_section_and_no_batch(env):
    fakes = FakeBulkActivities(mode="direct")
    _, result, progress, _ = await run(env, fakes, BulkRequest(client_ids=["c1", "c2"], level=Level.ESSENTIAL))
    assert fakes.submitted == 0 and fakes.polls == 0 and fakes.collected == 0
    assert result.mode == "direct" and result.batch_id is None and result.fallback == 6
    assert progress.fallback_done == 6


async def test_nothing_to_write_submits_nothing_and_still_assembles(env):
    fakes = FakeBulkActivities(to_generate=0, failed=0)
    _, result, _, _ = await run(env, fakes, BulkRequest(client_ids=["c1", "c2"], level=Level.ESSENTIAL))
    assert fakes.submitted == 0 and fakes.polls == 0
    assert result.to_generate == 0 and result.reused == 6 and set(result.documents) == {"c1", "c2"}


async def test_cancelling_the_bulk_while_it_waits_cancels_its_batch(env):
    fakes = FakeBulkActivities(polls_to_complete=1000)
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[BulkRegenerationWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            BulkRegenerationWorkflow.run,
            BulkRequest(client_ids=["c1"], level=Level.ESSENTIAL, poll_seconds=60),
            id=f"bulk-{uuid.uuid4()}",
            task_queue=queue,
        )
        await skip_until(env, lambda: fakes.polls >= 2, step=60)
        with pytest.raises(WorkflowFailureError) as info:
            await cancel_between_timers(env, handle, 60)
        assert isinstance(info.value.cause, CancelledError)
        progress = await handle.query(BulkRegenerationWorkflow.progress)
    assert fakes.cancelled == 1 and fakes.collected == 0
    assert progress.status == "cancelled"


async def test_a_submission_refused_by_a_paused_budget_waits_then_submits_once(env):
    fakes = FakeBulkActivities(refused_submits=2)
    started = await env.get_current_time()
    _, result, progress, _ = await run(
        env, fakes, BulkRequest(client_ids=["c1", "c2"], level=Level.ESSENTIAL, poll_seconds=60)
    )
    # Two refusals, each waited out durably (the hourly re-check, skipped by the server), then
    # one batch: the refusals submitted and held nothing.
    assert fakes.refused_submits == 0 and fakes.submitted == 1 and fakes.collected == 1
    assert (await env.get_current_time() - started).total_seconds() >= 2 * 3600
    assert result.batch_id == "batch-1" and progress.status == "completed"
