"""BusinessPlanWorkflow: one activity per section, fanned out, then one document assembled."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.plan import PlanActivities
    from contracts.models import (
        AssembleRequest,
        DocumentStatus,
        PlanInputs,
        PlanProgress,
        PlanRequest,
        PlanResult,
        SectionProgress,
        SectionRequest,
        SectionResult,
    )
    from domain.sections import DocumentKind
    from workflows.failures import tell_crm_failed
    from workflows.fanout import (
        FollowsClientUpdates,
        run_sections,
        run_step,
        service_tier,
        set_status,
        waits_for_budget,
    )
    from workflows.shared import (
        ASSEMBLE_TIMEOUT,
        PREPARE_TIMEOUT,
        SECTION_GROUPS_PATCH,
        STORAGE_RETRY,
    )


@workflow.defn
class BusinessPlanWorkflow(FollowsClientUpdates):
    def __init__(self) -> None:
        super().__init__()
        self._progress: PlanProgress | None = None

    @workflow.query
    def progress(self) -> PlanProgress | None:
        return self._progress

    def _set_status(self, status: DocumentStatus) -> None:
        assert self._progress is not None
        set_status(self._progress, status)

    @workflow.run
    async def run(self, request: PlanRequest) -> PlanResult:
        try:
            return await self._run(request)
        except Exception as err:
            await tell_crm_failed(err, request.client_id, DocumentKind.BUSINESS_PLAN, None)
            raise

    async def _run(self, request: PlanRequest) -> PlanResult:
        self._progress = PlanProgress(client_id=request.client_id, level=request.level)
        self._regenerate = set(request.regenerate)
        while True:
            inputs, sections = await self._round(request)
            if self._announced_version <= inputs.client_version:
                break
            # Updates that arrived meanwhile: one more round on the newest snapshot (sections
            # whose inputs did not change come from the cache at no cost).
            request = request.model_copy(update={"client_version": self._announced_version})
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(request)

        info = workflow.info()
        while True:
            try:
                document = await run_step(
                    PlanActivities.assemble_document,
                    AssembleRequest(
                        client_id=request.client_id,
                        client_version=inputs.client_version,
                        level=request.level,
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        sections=sections,
                    ),
                    document=self._progress,
                    status=DocumentStatus.ASSEMBLING,
                    limit=ASSEMBLE_TIMEOUT,
                    retry=STORAGE_RETRY,
                    summary=f"Assemble the business plan ({len(sections)} sections)",
                )
                break
            except ActivityError as err:
                # A paused budget refusing the assembly (workers before the template tier was
                # dropped made a model call here) waits as a section does.
                if not waits_for_budget(err):
                    raise
                await self._budget.wait(self._progress, then=None)  # the retried step shows it
        self._set_status(DocumentStatus.COMPLETED)
        return PlanResult(
            client_id=request.client_id,
            client_version=inputs.client_version,
            level=request.level,
            document=document,
            sections=sections,
        )

    async def _round(self, request: PlanRequest) -> tuple[PlanInputs, list[SectionResult]]:
        """Prepare, then every section concurrently; fails the plan if any section failed."""
        assert self._progress is not None
        inputs = await run_step(
            PlanActivities.prepare_plan,
            request,
            document=self._progress,
            status=DocumentStatus.PREPARING,
            limit=PREPARE_TIMEOUT,
            retry=STORAGE_RETRY,
            summary=f"Prepare the business plan ({request.level.value})",
        )
        self._progress.sections = [SectionProgress(section_key=k) for k in inputs.sections]
        self._set_status(DocumentStatus.GENERATING)

        tier = service_tier(request.deadline)
        work = [
            (
                progress,
                SectionRequest(
                    client_id=inputs.client_id,
                    client_version=inputs.client_version,
                    section_key=progress.section_key,
                    document_sections=inputs.sections,
                    fresh=progress.section_key in self._regenerate,
                    reuse_saves=request.reuse_saves,
                    service_tier=tier,
                    deadline=request.deadline,
                ),
            )
            for progress in self._progress.sections
        ]
        # Section groups (tokenopt.grouping) are a newer code path: histories recorded before it replay
        # without it. Decided at prepare; the workflow only follows.
        batches = inputs.batches if inputs.batches and workflow.patched(SECTION_GROUPS_PATCH) else []
        try:
            return inputs, await run_sections(work, "plan", batches, self._progress, self._budget)
        except ApplicationError:
            self._set_status(DocumentStatus.FAILED)
            raise
