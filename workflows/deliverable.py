"""DeliverableWorkflow: month N's five documents, six sections each, fanned out like a plan's.

prepare (client, month, digest of earlier months by reference) -> when the deadline is a day
and more away, the sections that can wait go through one Batch API batch (a child
DeadlineBatchWorkflow) -> the shared Brand Context, once -> the month's other 25 sections
concurrently (the same section activity as plans; those the batch wrote are skipped) -> one
assemble storing five documents.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deliverable import DeliverableActivities, month_level, section_request
    from contracts.models import (
        DeliverableAssembleRequest,
        DeliverableInputs,
        DeliverableProgress,
        DeliverableRequest,
        DeliverableResult,
        DocumentStatus,
        SectionProgress,
        SectionRequest,
        SectionResult,
    )
    from domain.sections import DocumentKind
    from tokenopt.service_tiers import ServiceTier
    from workflows.deadline_batch import batch_what_can_wait
    from workflows.failures import tell_crm_failed
    from workflows.fanout import FollowsClientUpdates, run_deadline, run_sections, run_step, service_tier, set_status
    from workflows.shared import (
        ASSEMBLE_TIMEOUT,
        PREPARE_TIMEOUT,
        SECTION_GROUPS_PATCH,
        STORAGE_RETRY,
    )


@workflow.defn
class DeliverableWorkflow(FollowsClientUpdates):
    def __init__(self) -> None:
        super().__init__()
        self._progress: DeliverableProgress | None = None

    @workflow.query
    def progress(self) -> DeliverableProgress | None:
        return self._progress

    def _set_status(self, status: DocumentStatus) -> None:
        assert self._progress is not None
        set_status(self._progress, status)

    @workflow.run
    async def run(self, request: DeliverableRequest) -> DeliverableResult:
        try:
            return await self._run(request)
        except Exception as err:
            await tell_crm_failed(err, request.client_id, DocumentKind.DELIVERABLE, request.month)
            raise

    async def _run(self, request: DeliverableRequest) -> DeliverableResult:
        self._progress = DeliverableProgress(client_id=request.client_id, month=request.month)
        self._regenerate = set(request.regenerate)
        if request.within is not None and request.deadline is None:
            # Fixed now, so a continued run keeps the first run's deadline.
            request = request.model_copy(update={"deadline": run_deadline(None, request.within), "within": None})
        while True:
            inputs, shared, rest = await self._round(request)
            if self._announced_version <= inputs.client_version:
                break
            # Updates that arrived meanwhile: one more round on the newest snapshot (sections
            # whose inputs did not change come from the cache at no cost).
            request = request.model_copy(update={"client_version": self._announced_version})
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(request)

        info = workflow.info()
        documents = await run_step(
            DeliverableActivities.assemble_deliverable,
            DeliverableAssembleRequest(
                client_id=inputs.client_id,
                client_version=inputs.client_version,
                month=inputs.month,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                documents=inputs.documents,
                sections=[*shared, *rest],
            ),
            document=self._progress,
            status=DocumentStatus.ASSEMBLING,
            limit=ASSEMBLE_TIMEOUT,
            retry=STORAGE_RETRY,
            summary=f"Assemble M{inputs.month} ({len(inputs.documents)} documents)",
        )
        self._set_status(DocumentStatus.COMPLETED)
        return DeliverableResult(
            client_id=inputs.client_id,
            client_version=inputs.client_version,
            month=inputs.month,
            documents=documents,
            sections=[*shared, *rest],
        )

    async def _round(
        self, request: DeliverableRequest
    ) -> tuple[DeliverableInputs, list[SectionResult], list[SectionResult]]:
        """Prepare, then the shared sections, then the rest; fails the month if any failed."""
        assert self._progress is not None
        inputs = await run_step(
            DeliverableActivities.prepare_deliverable,
            request,
            document=self._progress,
            status=DocumentStatus.PREPARING,
            limit=PREPARE_TIMEOUT,
            retry=STORAGE_RETRY,
            summary=f"Prepare M{request.month}",
        )
        progress = {k: SectionProgress(section_key=k) for k in (*inputs.shared_sections, *inputs.sections)}
        self._progress.sections = list(progress.values())
        self._set_status(DocumentStatus.GENERATING)

        # What can wait a day goes through the Batch API first (nothing when the deadline is
        # closer); the gathers below write the rest.
        written = await batch_what_can_wait(
            [(p, self._request(inputs, p)) for p in progress.values()],
            client_id=inputs.client_id,
            label=month_level(inputs.month),
            kind=DocumentKind.DELIVERABLE,
            deadline=request.deadline,
            poll_seconds=request.batch_poll_seconds,
            document=self._progress,
        )
        # Shared sections first: every document shows them, and they are written once.
        shared_group = [progress[k] for k in inputs.shared_sections]
        shared = await self._gather(shared_group, inputs, None, request.deadline, written)
        # Section groups (tokenopt.grouping) are a newer code path: histories recorded before it replay
        # without it. Decided at prepare; the workflow only follows.
        batches = inputs.batches if inputs.batches and workflow.patched(SECTION_GROUPS_PATCH) else []
        rest = await self._gather([progress[k] for k in inputs.sections], inputs, batches, request.deadline, written)
        return inputs, shared, rest

    def _request(
        self,
        inputs: DeliverableInputs,
        progress: SectionProgress,
        tier: ServiceTier = ServiceTier.STANDARD,
        deadline: datetime | None = None,
    ) -> SectionRequest:
        return section_request(
            inputs.client_version,
            inputs.client_id,
            progress.section_key,
            inputs.documents,
            inputs.digest_ref,
            fresh=progress.section_key in self._regenerate,
            service_tier=tier,
            deadline=deadline,
        )

    async def _gather(
        self,
        group: list[SectionProgress],
        inputs: DeliverableInputs,
        batches: list[list[str]] | None = None,
        deadline: datetime | None = None,
        written: dict[str, SectionResult] | None = None,
    ) -> list[SectionResult]:
        """Every section of the group not ``written`` already (by a Batch API batch)
        concurrently (each batch of sections as one activity), on the tier ``deadline`` allows
        now; fails the month if any failed."""
        written = written or {}
        tier = service_tier(deadline)
        work = [
            (progress, self._request(inputs, progress, tier, deadline))
            for progress in group
            if progress.section_key not in written
        ]
        try:
            done = await run_sections(work, "deliverable", batches, self._progress, self._budget) if work else []
        except ApplicationError:
            self._set_status(DocumentStatus.FAILED)
            raise
        by_key = {**written, **{r.section_key: r for r in done}}
        return [by_key[progress.section_key] for progress in group]
