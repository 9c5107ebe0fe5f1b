"""DeliverableWorkflow: month N's five documents, six sections each, fanned out like a plan's.

prepare (client, month, digest of earlier months by reference) -> the shared Brand Context,
once -> the month's other 25 sections concurrently (the same section activity as plans) ->
one assemble storing five documents.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deliverable import DeliverableActivities
    from domain.sections import DocumentKind
    from workflows.fanout import BudgetGate, run_sections, set_status
    from workflows.models import (
        DeliverableAssembleRequest,
        DeliverableInputs,
        DeliverableProgress,
        DeliverableRequest,
        DeliverableResult,
        SectionProgress,
        SectionRequest,
        SectionResult,
    )
    from workflows.shared import (
        ASSEMBLE_TIMEOUT,
        PREPARE_TIMEOUT,
        STORAGE_RETRY,
    )


@workflow.defn
class DeliverableWorkflow:
    def __init__(self) -> None:
        self._progress: DeliverableProgress | None = None
        self._budget = BudgetGate()

    @workflow.signal
    def budget_resumed(self) -> None:
        """A paused budget was resumed (`wavelaunch budget resume`): waiting sections run again."""
        self._budget.resume()

    @workflow.query
    def progress(self) -> DeliverableProgress | None:
        return self._progress

    def _set_status(self, status: str) -> None:
        assert self._progress is not None
        set_status(self._progress, status)

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
        work = []
        for progress in group:
            key = progress.section_key
            # The document the section belongs to (the first one for a shared section): the naive
            # counterfactual is priced per document.
            document = next((keys for keys in inputs.documents.values() if key in keys), [key])
            request = SectionRequest(
                client_id=inputs.client_id,
                client_version=inputs.client_version,
                section_key=key,
                document_sections=document,
                document_kind=DocumentKind.DELIVERABLE,
                context_ref=inputs.digest_ref,
            )
            work.append((progress, request))
        try:
            return await run_sections(work, "deliverable", self._progress, self._budget)
        except ApplicationError:
            self._set_status("failed")
            raise
