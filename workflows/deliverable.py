"""DeliverableWorkflow: month N's five documents, six sections each, fanned out like a plan's.

prepare (client, month, digest of earlier months by reference) -> the shared Brand Context,
once -> the month's other 25 sections concurrently (the same section activity as plans) ->
one assemble storing five documents.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deliverable import DeliverableActivities
    from activities.plan import PlanActivities
    from domain.sections import DocumentKind
    from workflows import search_attributes as sa
    from workflows.models import (
        DeliverableAssembleRequest,
        DeliverableInputs,
        DeliverableProgress,
        DeliverableRequest,
        DeliverableResult,
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
class DeliverableWorkflow:
    def __init__(self) -> None:
        self._progress: DeliverableProgress | None = None

    @workflow.query
    def progress(self) -> DeliverableProgress | None:
        return self._progress

    def _set_status(self, status: str) -> None:
        assert self._progress is not None
        self._progress.status = status
        workflow.upsert_search_attributes([sa.STATUS.value_set(status)])

    @workflow.run
    async def run(self, request: DeliverableRequest) -> DeliverableResult:
        self._progress = DeliverableProgress(client_id=request.client_id, month=request.month)
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
        shared = await self._gather([progress[k] for k in inputs.shared_sections], inputs)
        rest = await self._gather([progress[k] for k in inputs.sections], inputs)

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

    async def _gather(self, group: list[SectionProgress], inputs: DeliverableInputs) -> list[SectionResult]:
        """Every section of the group concurrently; fails the month if any failed."""
        results = await asyncio.gather(*(self._generate(p, inputs) for p in group), return_exceptions=True)
        failed = [
            f"{p.section_key}: {p.error}" for p, r in zip(group, results, strict=True) if isinstance(r, BaseException)
        ]
        if failed:
            self._set_status("failed")
            # Finished sections are stored; a new run of this month reuses them at no cost.
            raise ApplicationError(
                f"{len(failed)} of {len(results)} sections failed: " + "; ".join(failed),
                type="SectionsFailed",
                non_retryable=True,
            )
        return [r for r in results if isinstance(r, SectionResult)]

    async def _generate(self, progress: SectionProgress, inputs: DeliverableInputs) -> SectionResult:
        key = progress.section_key
        # The document the section belongs to (the first one for a shared section): the naive
        # counterfactual is priced per document.
        document = next((keys for keys in inputs.documents.values() if key in keys), [key])
        progress.status = SectionStatus.RUNNING
        try:
            result = await workflow.execute_activity_method(
                PlanActivities.generate_section,
                SectionRequest(
                    client_id=inputs.client_id,
                    client_version=inputs.client_version,
                    section_key=key,
                    document_sections=document,
                    document_kind=DocumentKind.DELIVERABLE,
                    context_ref=inputs.digest_ref,
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
