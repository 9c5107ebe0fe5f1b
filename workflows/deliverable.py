"""DeliverableWorkflow: month N's five documents, six sections each, fanned out like a plan's.

prepare (client, month, digest of earlier months by reference) -> the shared Brand Context,
once -> the month's other 25 sections concurrently (the same section activity as plans) ->
one assemble storing five documents.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deliverable import DeliverableActivities, section_request
    from domain.sections import DocumentKind
    from workflows.failures import tell_crm_failed
    from workflows.fanout import FollowsClientUpdates, run_deadline, run_sections, service_tier, set_status
    from workflows.models import (
        DeliverableAssembleRequest,
        DeliverableInputs,
        DeliverableProgress,
        DeliverableRequest,
        DeliverableResult,
        SectionProgress,
        SectionResult,
    )
    from workflows.shared import (
        ASSEMBLE_TIMEOUT,
        PREPARE_TIMEOUT,
        SECTION_BATCHES_PATCH,
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

    def _set_status(self, status: str) -> None:
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

        self._set_status("assembling")
        info = workflow.info()
        documents = await workflow.execute_activity_method(
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
            start_to_close_timeout=ASSEMBLE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        self._set_status("completed")
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
        self._set_status("preparing")
        inputs = await workflow.execute_activity_method(
            DeliverableActivities.prepare_deliverable,
            request,
            start_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        progress = {k: SectionProgress(section_key=k) for k in (*inputs.shared_sections, *inputs.sections)}
        self._progress.sections = list(progress.values())
        self._set_status("generating")

        # Shared sections first: every document shows them, and they are written once.
        shared = await self._gather([progress[k] for k in inputs.shared_sections], inputs, None, request.deadline)
        # Batches (tokenopt.batching) are a newer code path: histories recorded before it replay
        # without it. Decided at prepare; the workflow only follows.
        batches = inputs.batches if inputs.batches and workflow.patched(SECTION_BATCHES_PATCH) else []
        rest = await self._gather([progress[k] for k in inputs.sections], inputs, batches, request.deadline)
        return inputs, shared, rest

    async def _gather(
        self,
        group: list[SectionProgress],
        inputs: DeliverableInputs,
        batches: list[list[str]] | None = None,
        deadline: datetime | None = None,
    ) -> list[SectionResult]:
        """Every section of the group concurrently (each batch as one activity), on the tier
        ``deadline`` allows; fails the month if any failed."""
        tier = service_tier(deadline)
        work = [
            (
                progress,
                section_request(
                    inputs.client_version,
                    inputs.client_id,
                    progress.section_key,
                    inputs.documents,
                    inputs.digest_ref,
                    fresh=progress.section_key in self._regenerate,
                    service_tier=tier,
                    deadline=deadline,
                ),
            )
            for progress in group
        ]
        try:
            return await run_sections(work, "deliverable", batches, self._progress, self._budget)
        except ApplicationError:
            self._set_status("failed")
            raise
