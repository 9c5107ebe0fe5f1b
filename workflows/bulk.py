"""BulkRegenerationWorkflow: many clients' plans through the OpenAI Batch API, durably.

prepare (the sections that need writing, stored as a request set) -> submit one batch ->
durable timers + polls until the batch is done (continue-as-new when the wait gets long) ->
collect (valid answers stored as full generations, batch price in the ledger) -> whatever failed
goes the direct way (``generate_section``) -> each client's plan, which finds its sections
stored. With a local model or WAVELAUNCH_BATCH_API=false every section goes the direct way.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.bulk import BulkActivities
    from contracts.models import (
        BatchState,
        BulkCollected,
        BulkMode,
        BulkPrepared,
        BulkProgress,
        BulkRequest,
        BulkResult,
        BulkResume,
        DocumentStatus,
        PlanRequest,
        PlanResult,
        SectionProgress,
        SectionResult,
    )
    from workflows import search_attributes as sa
    from workflows.business_plan import BusinessPlanWorkflow
    from workflows.fanout import BudgetGate, WaitsOnBudget, run_section, set_status, waits_for_budget
    from workflows.ids import plan_workflow_id
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


# Histories from before bulk work waited on a paused budget failed at the refusal instead.
BUDGET_WAIT_PATCH = "bulk-budget-wait"


@workflow.defn
class BulkRegenerationWorkflow(WaitsOnBudget):
    def __init__(self) -> None:
        super().__init__()
        self._progress = BulkProgress()

    @workflow.query
    def progress(self) -> BulkProgress:
        return self._progress

    def _set_status(self, status: DocumentStatus) -> None:
        set_status(self._progress, status)

    def _gate(self) -> BudgetGate | None:
        """Where work refused by a paused budget waits (WAVELAUNCH_BUDGET_ON_PAUSE=wait)."""
        return self._budget if workflow.patched(BUDGET_WAIT_PATCH) else None

    @workflow.run
    async def run(self, request: BulkRequest) -> BulkResult:
        self._progress.level = request.level
        if request.resume is not None:
            prepared, batch = request.resume.prepared, request.resume.batch
            self._show_prepared(prepared)
            self._show_batch(batch)
            self._progress.polls = request.resume.polls
        else:
            self._set_status(DocumentStatus.PREPARING)
            prepared = await workflow.execute_activity_method(
                BulkActivities.prepare_bulk,
                request,
                start_to_close_timeout=BULK_PREPARE_TIMEOUT,
                heartbeat_timeout=BULK_HEARTBEAT_TIMEOUT,
                retry_policy=STORAGE_RETRY,
            )
            self._show_prepared(prepared)
            batch = None
            if prepared.mode == BulkMode.BATCH and prepared.to_generate:
                self._set_status(DocumentStatus.SUBMITTING)
                batch = await self._submit(prepared)
                self._show_batch(batch)

        if batch is not None:
            batch = await self._wait(request, prepared, batch)
            self._set_status(DocumentStatus.COLLECTING)
            collected = await workflow.execute_activity_method(
                BulkActivities.collect_batch,
                prepared.ref,
                start_to_close_timeout=BULK_PREPARE_TIMEOUT,
                heartbeat_timeout=BULK_HEARTBEAT_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
            self._show_collected(collected)

        failed_clients = await self._direct(prepared)
        if request.assemble:
            await self._assemble(request, prepared, failed_clients)
        if self._progress.failed:
            self._set_status(DocumentStatus.FAILED)
            raise ApplicationError(
                f"{len(self._progress.failed)} failure(s) in the bulk regeneration: "
                + "; ".join(self._progress.failed),
                type="BulkFailed",
                non_retryable=True,
            )
        self._set_status(DocumentStatus.COMPLETED)
        return BulkResult(
            ref=prepared.ref,
            mode=prepared.mode,
            batch_id=self._progress.batch_id,
            clients=[c.client_id for c in prepared.clients],
            to_generate=prepared.to_generate,
            reused=prepared.reused,
            stored_from_batch=self._progress.stored_from_batch,
            fallback=self._progress.fallback,
            batch_cost=self._progress.batch_cost,
            direct_cost=self._progress.direct_cost,
            documents=self._progress.documents,
        )

    async def _submit(self, prepared: BulkPrepared) -> BatchState:
        """Submit the batch. Refused by a paused budget (all or nothing: nothing was submitted or
        held), wait for ``budget_resumed`` and submit again, or fail, as configured."""
        while True:
            try:
                return await workflow.execute_activity_method(
                    BulkActivities.submit_batch,
                    prepared.ref,
                    start_to_close_timeout=BATCH_SUBMIT_TIMEOUT,
                    retry_policy=BATCH_RETRY,
                )
            except ActivityError as err:
                gate = self._gate() if waits_for_budget(err) else None
                if gate is None:
                    raise
                await gate.wait(self._progress, then=DocumentStatus.SUBMITTING)

    async def _wait(self, request: BulkRequest, prepared: BulkPrepared, batch: BatchState) -> BatchState:
        """Durable timers between polls until the batch is done; continue as new when the wait
        has made the history long (a 24 h window at one poll a minute is 1,440 polls)."""
        self._set_status(DocumentStatus.WAITING)
        polls_this_run = 0
        while not batch.terminal:
            try:
                await workflow.sleep(timedelta(seconds=request.poll_seconds))
                batch = await workflow.execute_activity_method(
                    BulkActivities.poll_batch,
                    prepared.ref,
                    start_to_close_timeout=BATCH_POLL_TIMEOUT,
                    retry_policy=BATCH_POLL_RETRY,
                )
            except asyncio.CancelledError:
                # A cancelled bulk cancels its batch, so nobody pays for answers no one collects.
                self._set_status(DocumentStatus.CANCELLED)
                await workflow.execute_activity_method(
                    BulkActivities.cancel_batch,
                    prepared.ref,
                    start_to_close_timeout=BATCH_POLL_TIMEOUT,
                    retry_policy=BATCH_RETRY,
                )
                raise
            polls_this_run += 1
            self._progress.polls += 1
            self._show_batch(batch)
            if not batch.terminal and (
                polls_this_run >= request.max_polls_per_run or workflow.info().is_continue_as_new_suggested()
            ):
                resume = BulkResume(prepared=prepared, batch=batch, polls=self._progress.polls)
                workflow.continue_as_new(request.model_copy(update={"resume": resume}))
        return batch

    async def _direct(self, prepared: BulkPrepared) -> set[str]:
        """Every section the batch did not store (all of them in direct mode), one
        ``generate_section`` each; the clients with a section that still failed."""
        requests = await workflow.execute_activity_method(
            BulkActivities.bulk_fallback,
            prepared.ref,
            start_to_close_timeout=BATCH_POLL_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        if not requests:
            return set()
        self._set_status(DocumentStatus.GENERATING)
        self._progress.fallback = len(requests)
        work = [(SectionProgress(section_key=r.section_key), r) for r in requests]
        gate = self._gate()
        results = await asyncio.gather(
            *(run_section(p, r, self._progress, gate) for p, r in work), return_exceptions=True
        )
        failed: set[str] = set()
        for (progress, request), result in zip(work, results, strict=True):
            if isinstance(result, SectionResult):
                self._progress.fallback_done += 1
                self._progress.direct_cost += result.cost
            else:
                failed.add(request.client_id)
                self._progress.failed.append(f"{request.client_id}/{request.section_key}: {progress.error}")
        return failed

    async def _assemble(self, request: BulkRequest, prepared: BulkPrepared, skip: set[str]) -> None:
        """Each client's plan (``plan-<clientId>``), pinned to the version prepared: every section
        is stored by now, so the plan only assembles. A plan already running for a client is
        left to finish on its own."""
        self._set_status(DocumentStatus.ASSEMBLING)
        todo = [c for c in prepared.clients if c.client_id not in skip]
        results = await asyncio.gather(
            *(self._plan(request, c.client_id, c.client_version) for c in todo), return_exceptions=True
        )
        for client, result in zip(todo, results, strict=True):
            if isinstance(result, PlanResult):
                self._progress.documents[client.client_id] = result.document.version
                self._progress.direct_cost += result.total_cost
            elif isinstance(result, WorkflowAlreadyStartedError):
                self._progress.failed.append(f"{client.client_id}: a plan is already running for this client")
            elif isinstance(result, BaseException):
                self._progress.failed.append(f"{client.client_id}: {_child_failure(result)}")

    async def _plan(self, request: BulkRequest, client_id: str, version: int) -> PlanResult:
        return await workflow.execute_child_workflow(
            BusinessPlanWorkflow.run,
            # The batch's rows already count these sections against the naive way.
            PlanRequest(client_id=client_id, level=request.level, client_version=version, reuse_saves=False),
            id=plan_workflow_id(client_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CLIENT_ID, client_id),
                    SearchAttributePair(sa.DOCUMENT_KIND, request.document_kind.value),
                    SearchAttributePair(sa.LEVEL, request.level.value),
                    SearchAttributePair(sa.STATUS, "queued"),
                ]
            ),
        )

    def _show_prepared(self, prepared: BulkPrepared) -> None:
        self._progress.mode = prepared.mode
        self._progress.clients = len(prepared.clients)
        self._progress.to_generate = prepared.to_generate
        self._progress.reused = prepared.reused

    def _show_batch(self, batch: BatchState) -> None:
        self._progress.batch_id = batch.batch_id
        self._progress.batch_status = batch.status
        self._progress.batch_completed = batch.completed
        self._progress.batch_failed = batch.failed

    def _show_collected(self, collected: BulkCollected) -> None:
        self._progress.stored_from_batch = collected.stored
        self._progress.batch_cost = collected.cost


def _child_failure(err: BaseException) -> str:
    if isinstance(err, ChildWorkflowError) and err.cause is not None:
        return failure_message(err.cause)
    return failure_message(err)
