"""DeadlineBatchWorkflow: the sections of one document that can wait a day, through the OpenAI
Batch API at half the price, on the bulk regeneration's activities.

A document whose deadline allows the batch tier (tokenopt.service_tiers) runs it as a child
before its own fan-out: prepare (the sections no stored, exact, semantic or patch tier serves,
stored as a request set) -> submit one batch -> durable timers and polls until the batch is done
or ``wait_until`` comes (continue-as-new on long waits) -> a batch still running then is
cancelled -> collect (answers stored as a direct generation stores them, at the batch price).
It returns the sections it stored; the document writes every other one directly (flex, then
standard) in the margin left before its deadline. Nothing here fails the document: a batch
that cannot be submitted, fails or expires only leaves more for the direct way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.bulk import BulkActivities
    from contracts.models import (
        BatchState,
        BulkMode,
        BulkPrepared,
        BulkResume,
        DeadlineBatchRequest,
        DeadlineBatchResult,
        DocumentStatus,
        SectionProgress,
        SectionRequest,
        SectionResult,
        SectionStatus,
    )
    from domain.sections import DocumentKind
    from tokenopt.service_tiers import BATCH_CANCEL_GRACE, ServiceTier, batch_wait_until, document_tier
    from workflows import search_attributes as sa
    from workflows.fanout import Statused, mark_done, set_status
    from workflows.shared import (
        BATCH_POLL_RETRY,
        BATCH_POLL_TIMEOUT,
        BATCH_RETRY,
        BATCH_SUBMIT_TIMEOUT,
        BULK_HEARTBEAT_TIMEOUT,
        BULK_PREPARE_TIMEOUT,
        STORAGE_RETRY,
        failure_message,
    )

# workflow.patched id of a document's batch path: histories from before it wrote every section
# directly (on flex) whatever the deadline.
DEADLINE_BATCH_PATCH = "deadline-batch"


@workflow.defn
class DeadlineBatchWorkflow:
    def __init__(self) -> None:
        self._result = DeadlineBatchResult()

    @workflow.query
    def progress(self) -> DeadlineBatchResult:
        return self._result

    @workflow.run
    async def run(self, request: DeadlineBatchRequest) -> DeadlineBatchResult:
        out = self._result
        if request.resume is not None:
            prepared, batch = request.resume.prepared, request.resume.batch
            out.polls = request.resume.polls
            self._show(prepared, batch)
        else:
            prepared = await workflow.execute_activity_method(
                BulkActivities.prepare_sections_batch,
                request,
                start_to_close_timeout=BULK_PREPARE_TIMEOUT,
                heartbeat_timeout=BULK_HEARTBEAT_TIMEOUT,
                retry_policy=STORAGE_RETRY,
            )
            self._show(prepared, None)
            if prepared.mode != BulkMode.BATCH or not prepared.to_generate or workflow.now() >= request.wait_until:
                return out
            try:
                batch = await workflow.execute_activity_method(
                    BulkActivities.submit_batch,
                    prepared.ref,
                    start_to_close_timeout=BATCH_SUBMIT_TIMEOUT,
                    retry_policy=BATCH_RETRY,
                )
            except ActivityError as err:
                # Refused by a budget, or the endpoint failing: the document writes the sections
                # itself, where its own budget rules (wait or fail) apply.
                workflow.logger.warning("batch not submitted (%s); writing directly", failure_message(err))
                return out
            self._show(prepared, batch)

        batch = await self._wait(request, prepared, batch)
        if not batch.terminal:
            out.cut_short = True
            batch = await self._cut_short(request, prepared)
        try:
            collected = await workflow.execute_activity_method(
                BulkActivities.collect_batch_sections,
                prepared.ref,
                start_to_close_timeout=BULK_PREPARE_TIMEOUT,
                heartbeat_timeout=BULK_HEARTBEAT_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("batch not collected (%s); writing directly", failure_message(err))
            return out
        out.sections = collected.sections
        out.cost = collected.collected.cost
        return out

    async def _wait(self, request: DeadlineBatchRequest, prepared: BulkPrepared, batch: BatchState) -> BatchState:
        """Durable timers between looks until the batch is done or ``wait_until`` (a last look
        then); continue as new when the wait has made the history long."""
        polls_this_run = 0
        while not batch.terminal:
            left = request.wait_until - workflow.now()
            if left <= timedelta(0):
                return batch
            try:
                await workflow.sleep(min(timedelta(seconds=request.poll_seconds), left))
                batch = await self._poll(prepared)
            except asyncio.CancelledError:
                # The document was cancelled: so is its batch, so nobody pays for unread answers.
                await self._cancel(prepared)
                raise
            polls_this_run += 1
            if not batch.terminal and (
                polls_this_run >= request.max_polls_per_run or workflow.info().is_continue_as_new_suggested()
            ):
                resume = BulkResume(prepared=prepared, batch=batch, polls=self._result.polls)
                workflow.continue_as_new(request.model_copy(update={"resume": resume}))
        return batch

    async def _cut_short(self, request: DeadlineBatchRequest, prepared: BulkPrepared) -> BatchState:
        """Cancel the batch at ``wait_until`` and look a little longer: lines it answered before
        the cancel took hold are kept (and paid once), not written again."""
        batch = await self._cancel(prepared)
        until = workflow.now() + BATCH_CANCEL_GRACE
        while not batch.terminal and workflow.now() < until:
            await workflow.sleep(min(timedelta(seconds=request.poll_seconds), until - workflow.now()))
            batch = await self._poll(prepared)
        return batch

    async def _poll(self, prepared: BulkPrepared) -> BatchState:
        batch = await workflow.execute_activity_method(
            BulkActivities.poll_batch,
            prepared.ref,
            start_to_close_timeout=BATCH_POLL_TIMEOUT,
            retry_policy=BATCH_POLL_RETRY,
        )
        self._result.polls += 1
        self._show(prepared, batch)
        return batch

    async def _cancel(self, prepared: BulkPrepared) -> BatchState:
        batch = await workflow.execute_activity_method(
            BulkActivities.cancel_batch,
            prepared.ref,
            start_to_close_timeout=BATCH_POLL_TIMEOUT,
            retry_policy=BATCH_RETRY,
        )
        self._show(prepared, batch)
        return batch

    def _show(self, prepared: BulkPrepared, batch: BatchState | None) -> None:
        self._result.ref = prepared.ref or None
        self._result.mode = prepared.mode
        self._result.to_generate = prepared.to_generate
        if batch is not None:
            self._result.batch_id = batch.batch_id
            self._result.batch_status = batch.status


def batch_allowed(deadline: datetime | None) -> bool:
    """Whether the work's deadline (workflow time) leaves room for the Batch API's window."""
    if deadline is None:
        return False
    return document_tier(deadline - workflow.now(), batch_available=True) is ServiceTier.BATCH


async def batch_what_can_wait(
    work: list[tuple[SectionProgress, SectionRequest]],
    *,
    client_id: str,
    label: str,
    kind: DocumentKind,
    deadline: datetime | None,
    poll_seconds: int,
    document: Statused,
) -> dict[str, SectionResult]:
    """Section key -> result, for the sections of ``work`` a Batch API batch wrote (none when
    the deadline is too close, the endpoint has no Batch API, or in histories from before this
    path). The document writes the others as usual."""
    if deadline is None or not batch_allowed(deadline) or not workflow.patched(DEADLINE_BATCH_PATCH):
        return {}
    set_status(document, DocumentStatus.BATCHING)
    for progress, _ in work:
        progress.status = SectionStatus.RUNNING
    result = await workflow.execute_child_workflow(
        DeadlineBatchWorkflow.run,
        DeadlineBatchRequest(
            client_id=client_id,
            label=label,
            document_kind=kind,
            sections=[request for _, request in work],
            wait_until=batch_wait_until(deadline),
            poll_seconds=poll_seconds,
        ),
        # Readable in the Web UI, unique per document run (the uuid is the workflow's, replayed).
        id=f"batch-{client_id}-{label}-{workflow.uuid4().hex[:8]}",
        # A cancelled document cancels its batch (the child's cancellation handler).
        parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.CLIENT_ID, client_id), SearchAttributePair(sa.DOCUMENT_KIND, kind.value)]
        ),
    )
    written = {r.section_key: r for r in result.sections}
    for progress, _ in work:
        if progress.section_key in written:
            mark_done(progress, written[progress.section_key])
        else:
            progress.status = SectionStatus.PENDING
    set_status(document, DocumentStatus.GENERATING)
    return written
