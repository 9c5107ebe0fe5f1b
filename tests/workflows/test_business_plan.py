"""BusinessPlanWorkflow on the time-skipping server, activities replaced at the boundary."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import (
    AssembleRequest,
    DocumentFailure,
    DocumentRef,
    PlanInputs,
    PlanRequest,
    SectionGroupRequest,
    SectionGroupResult,
    SectionRequest,
    SectionResult,
)
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from workflows.business_plan import BusinessPlanWorkflow


class FakeActivities:
    def __init__(self, fail_sections: set[str] | None = None):
        self.generated: list[str] = []
        self.assembled: list[AssembleRequest] = []
        self.fail_sections = fail_sections or set()
        self.failures: list[DocumentFailure] = []

    @activity.defn(name="prepare_plan")
    async def prepare_plan(self, request: PlanRequest) -> PlanInputs:
        keys = [s.key for s in resolve_sections(request.level, request.sections)]
        return PlanInputs(client_id=request.client_id, client_version=request.client_version or 3, sections=keys)

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        self.generated.append(request.section_key)
        if request.section_key in self.fail_sections:
            raise ApplicationError("model returned invalid JSON", type="InvalidModelOutput", non_retryable=True)
        return SectionResult(
            section_key=request.section_key,
            section_id=len(self.generated),
            model="m",
            tier="standard",
            prompt_tokens=100,
            completion_tokens=400,
            cost=Decimal("0.001"),
        )

    @activity.defn(name="assemble_document")
    async def assemble_document(self, request: AssembleRequest) -> DocumentRef:
        self.assembled.append(request)
        return DocumentRef(document_id=7, version=1, markdown_chars=1234)

    @activity.defn(name="document_failed")
    async def document_failed(self, failure: DocumentFailure) -> None:
        self.failures.append(failure)


async def _run(
    env: WorkflowEnvironment, fakes: FakeActivities, request: PlanRequest, workflow_id: str = "", **start: object
):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[BusinessPlanWorkflow],
        activities=[fakes.prepare_plan, fakes.generate_section, fakes.assemble_document, fakes.document_failed],
    ):
        handle = await env.client.start_workflow(
            BusinessPlanWorkflow.run, request, id=workflow_id or f"plan-{uuid.uuid4()}", task_queue=queue, **start
        )
        result = await handle.result()
        # Queries need a worker, so ask while this one still runs.
        return await handle.query(BusinessPlanWorkflow.progress), result


async def test_complete_level_generates_every_section_once_and_assembles(env):
    fakes = FakeActivities()
    progress, result = await _run(env, fakes, PlanRequest(client_id="c1", level=Level.COMPLETE))
    assert sorted(fakes.generated) == sorted(s.key for s in resolve_sections(Level.COMPLETE))
    assert len(fakes.generated) == 8
    assert result.client_version == 3
    assert result.document.document_id == 7
    assert result.total_tokens == 8 * 500
    assert [s.section_key for s in fakes.assembled[0].sections] == [s.key for s in resolve_sections(Level.COMPLETE)]
    assert progress.status == "completed"
    assert progress.tokens == 4000


async def test_essential_level_asks_only_priority_one_and_two(env):
    fakes = FakeActivities()
    await _run(env, fakes, PlanRequest(client_id="c1", level=Level.ESSENTIAL))
    assert sorted(fakes.generated) == ["competitive_landscape", "executive_summary", "market_analysis"]


async def test_failed_section_fails_the_plan_after_the_others_finish(env):
    fakes = FakeActivities(fail_sections={"market_analysis"})
    with pytest.raises(WorkflowFailureError) as info:
        await _run(env, fakes, PlanRequest(client_id="c1", level=Level.ESSENTIAL))
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "SectionsFailed"
    assert "market_analysis" in str(cause) and "invalid JSON" in str(cause)
    # The other sections still ran (they are stored for a retry); nothing was assembled.
    assert set(fakes.generated) == {"executive_summary", "market_analysis", "competitive_landscape"}
    assert fakes.assembled == []
    # The CRM is told (through the outbox), with the error's type, never its text.
    [failure] = fakes.failures
    assert (failure.client_id, failure.kind, failure.reason) == ("c1", "business_plan", "SectionsFailed")
    assert failure.workflow_id.startswith("plan-")


async def test_a_completed_plan_tells_the_crm_of_no_failure(env):
    fakes = FakeActivities()
    await _run(env, fakes, PlanRequest(client_id="c1", level=Level.ESSENTIAL))
    assert fakes.failures == []


async def test_an_announced_newer_version_gets_one_more_round_on_that_version(env):
    fakes = FakeActivities()
    _, result = await _run(
        env,
        fakes,
        PlanRequest(client_id="c1", level=Level.ESSENTIAL),
        start_signal="client_updated",
        start_signal_args=[5],
    )
    assert result.client_version == 5
    assert len(fakes.generated) == 6  # two rounds of three sections
    assert fakes.assembled[0].client_version == 5 and len(fakes.assembled) == 1


class BatchingFakes(FakeActivities):
    """prepare_plan chooses one batch; the batch activity records what it was asked for."""

    BATCH = ["operations_plan", "team_structure"]

    def __init__(self, fail_batch: bool = False):
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail_batch = fail_batch

    @activity.defn(name="prepare_plan")
    async def prepare_plan(self, request: PlanRequest) -> PlanInputs:
        inputs = await super().prepare_plan(request)
        return inputs.model_copy(update={"batches": [self.BATCH]})

    @activity.defn(name="generate_section_batch")
    async def generate_section_batch(self, request: SectionGroupRequest) -> SectionGroupResult:
        keys = [m.section_key for m in request.members]
        self.batches.append(keys)
        if self.fail_batch:
            raise ApplicationError("LLM quota exhausted", type="LLMPermissionDenied", non_retryable=True)
        return SectionGroupResult(
            sections=[
                SectionResult(section_key=k, section_id=90 + i, model="m", tier="economy", batch_size=len(keys))
                for i, k in enumerate(keys)
            ]
        )


async def _run_batching(env: WorkflowEnvironment, fakes: BatchingFakes, request: PlanRequest, workflow_id: str = ""):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[BusinessPlanWorkflow],
        activities=[fakes.prepare_plan, fakes.generate_section, fakes.generate_section_batch, fakes.assemble_document],
    ):
        handle = await env.client.start_workflow(
            BusinessPlanWorkflow.run, request, id=workflow_id or f"plan-{uuid.uuid4()}", task_queue=queue
        )
        try:
            await handle.result()
        finally:
            progress = await handle.query(BusinessPlanWorkflow.progress)
        return progress


async def test_a_batch_chosen_at_prepare_runs_as_one_activity_and_sections_keep_reading_order(env):
    fakes = BatchingFakes()
    progress = await _run_batching(env, fakes, PlanRequest(client_id="c1", level=Level.COMPLETE))
    assert fakes.batches == [BatchingFakes.BATCH]
    complete = [s.key for s in resolve_sections(Level.COMPLETE)]
    assert sorted(fakes.generated) == sorted(set(complete) - set(BatchingFakes.BATCH))
    assert [s.section_key for s in fakes.assembled[0].sections] == complete
    # Progress shows each member on its own, as for any section.
    assert {s.section_key: s.status for s in progress.sections} == dict.fromkeys(complete, "done")


async def test_a_failed_batch_fails_each_member_and_the_plan(env):
    fakes = BatchingFakes(fail_batch=True)
    with pytest.raises(WorkflowFailureError) as info:
        await _run_batching(env, fakes, PlanRequest(client_id="c1", level=Level.COMPLETE))
    assert "2 of 8 sections" in str(info.value.cause)
    assert "operations_plan" in str(info.value.cause) and "team_structure" in str(info.value.cause)


async def test_section_activities_carry_their_titles_as_summaries(env):
    """The Web UI tells a document's activities apart by their summaries: the section titles,
    a section group's members, and the prepare step."""
    fakes = BatchingFakes()
    workflow_id = f"plan-{uuid.uuid4()}"
    await _run_batching(env, fakes, PlanRequest(client_id="c1", level=Level.COMPLETE), workflow_id=workflow_id)
    handle = env.client.get_workflow_handle(workflow_id)
    converter = env.client.data_converter.payload_converter
    summaries = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            summary = converter.from_payload(event.user_metadata.summary, str)
            summaries.setdefault(name, []).append(summary)
    titles = {s.key: s.title for s in resolve_sections(Level.COMPLETE)}
    assert sorted(summaries["generate_section"]) == sorted(t for k, t in titles.items() if k not in BatchingFakes.BATCH)
    assert summaries["generate_section_batch"] == [
        "2 sections in one call: " + ", ".join(titles[k] for k in BatchingFakes.BATCH)
    ]


async def test_only_statuses_that_outlast_a_workflow_task_are_written_to_the_search_attribute(env):
    """Prepare and assemble run inside the workflow task that starts them (local activities):
    their statuses never reach the server, so writing them is a visibility update nobody can
    see. What operators filter on in the Web UI is written: generating, then completed."""
    fakes = FakeActivities()
    workflow_id = f"plan-{uuid.uuid4()}"
    await _run(env, fakes, PlanRequest(client_id="c1", level=Level.COMPLETE), workflow_id=workflow_id)
    handle = env.client.get_workflow_handle(workflow_id)
    converter = env.client.data_converter.payload_converter
    written = []
    async for event in handle.fetch_history_events():
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "WavelaunchStatus" in fields:
                written.append(converter.from_payload(fields["WavelaunchStatus"], str))
    assert written == ["generating", "completed"]
    assert len(fakes.generated) == 8 and fakes.assembled
