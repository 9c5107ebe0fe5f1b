"""BusinessPlanWorkflow: one activity per section, fanned out, then one document assembled."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.plan import PlanActivities
    from workflows import search_attributes as sa
    from workflows.models import (
        AssembleRequest,
        PlanInputs,
        PlanProgress,
        PlanRequest,
        PlanResult,
        SectionProgress,
        SectionRequest,
        SectionResult,
        SectionStatus,
    )
    from workflows.shared import (
        ASSEMBLE_TIMEOUT,
        PREPARE_TIMEOUT,
        SECTION_HEARTBEAT_TIMEOUT,
        SECTION_RETRY,
        SECTION_START_TO_CLOSE,
        STORAGE_RETRY,
        failure_message,
    )


@workflow.defn
class BusinessPlanWorkflow:
    def __init__(self) -> None:
        self._progress: PlanProgress | None = None
        self._regenerate: set[str] = set()
        # The newest client version announced while running (signal), folded in after a round.
        self._announced_version = 0

    @workflow.signal
    def client_updated(self, version: int) -> None:
        """A newer client snapshot exists: write it in after the current round, not in a second plan."""
        self._announced_version = max(self._announced_version, version)

    @workflow.query
    def progress(self) -> PlanProgress | None:
        return self._progress

    def _set_status(self, status: str) -> None:
        assert self._progress is not None
        self._progress.status = status
        workflow.upsert_search_attributes([sa.STATUS.value_set(status)])

    @workflow.run
    async def run(self, request: PlanRequest) -> PlanResult:
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

        self._set_status("assembling")
        info = workflow.info()
        document = await workflow.execute_activity_method(
            PlanActivities.assemble_document,
            AssembleRequest(
                client_id=request.client_id,
                client_version=inputs.client_version,
                level=request.level,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                sections=sections,
            ),
            start_to_close_timeout=ASSEMBLE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        self._set_status("completed")
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
        self._set_status("preparing")
        inputs = await workflow.execute_activity_method(
            PlanActivities.prepare_plan,
            request,
            start_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        self._progress.sections = [SectionProgress(section_key=k) for k in inputs.sections]
        self._set_status("generating")

        results = await asyncio.gather(
            *(self._generate(progress, inputs) for progress in self._progress.sections),
            return_exceptions=True,
        )
        failed = [
            f"{p.section_key}: {p.error}"
            for p, r in zip(self._progress.sections, results, strict=True)
            if isinstance(r, BaseException)
        ]
        if failed:
            self._set_status("failed")
            # Finished sections are stored; a new run of this plan reuses them at no cost.
            raise ApplicationError(
                f"{len(failed)} of {len(results)} sections failed: " + "; ".join(failed),
                type="SectionsFailed",
                non_retryable=True,
            )
        return inputs, [r for r in results if isinstance(r, SectionResult)]

    async def _generate(self, progress: SectionProgress, inputs: PlanInputs) -> SectionResult:
        progress.status = SectionStatus.RUNNING
        try:
            result = await workflow.execute_activity_method(
                PlanActivities.generate_section,
                SectionRequest(
                    client_id=inputs.client_id,
                    client_version=inputs.client_version,
                    section_key=progress.section_key,
                    document_sections=inputs.sections,
                    fresh=progress.section_key in self._regenerate,
                ),
                start_to_close_timeout=SECTION_START_TO_CLOSE,
                heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
                retry_policy=SECTION_RETRY,
            )
        except ActivityError as err:
            progress.status = SectionStatus.FAILED
            progress.error = failure_message(err)
            raise
        progress.status = SectionStatus.DONE
        progress.model = result.model
        progress.tokens = result.prompt_tokens + result.completion_tokens
        progress.cost = result.cost
        progress.cache_tier = result.cache_tier
        return result
