"""DeliverableWorkflow on the time-skipping server, activities replaced at the boundary."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import (
    DeliverableAssembleRequest,
    DeliverableDocumentRef,
    DeliverableInputs,
    DeliverableRequest,
    SectionGroupRequest,
    SectionGroupResult,
    SectionRequest,
    SectionResult,
)
from domain.catalogue import deliverables
from domain.sections import DocumentKind
from workflows.deliverable import DeliverableWorkflow
from workflows.fanout import section_summary


class FakeDeliverableActivities:
    def __init__(self) -> None:
        self.requests: list[SectionRequest] = []
        # (event, section key) in the order things happened: starts and ends.
        self.events: list[tuple[str, str]] = []
        self.assembled: list[DeliverableAssembleRequest] = []

    @activity.defn(name="prepare_deliverable")
    async def prepare_deliverable(self, request: DeliverableRequest) -> DeliverableInputs:
        try:
            month = deliverables.month(request.month)
        except ValueError as err:
            raise ApplicationError(str(err), type="InvalidMonth", non_retryable=True) from None
        specs = deliverables.month_sections(month.number)
        return DeliverableInputs(
            client_id=request.client_id,
            client_version=request.client_version or 2,
            month=month.number,
            shared_sections=[s.key for s in specs if s.key in deliverables.SHARED_KINDS],
            sections=[s.key for s in specs if s.key not in deliverables.SHARED_KINDS],
            documents={d.key: [s.key for s in deliverables.document_sections(d.key)] for d in month.documents},
            digest_ref="digest-1" if month.number > 1 else None,
        )

    @activity.defn(name="generate_section")
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        self.requests.append(request)
        self.events.append(("start", request.section_key))
        await asyncio.sleep(0)
        self.events.append(("end", request.section_key))
        return SectionResult(
            section_key=request.section_key,
            section_id=len(self.requests),
            model="m",
            tier="standard",
            prompt_tokens=10,
            completion_tokens=40,
            cost=Decimal("0.0001"),
        )

    @activity.defn(name="assemble_deliverable")
    async def assemble_deliverable(self, request: DeliverableAssembleRequest) -> list[DeliverableDocumentRef]:
        self.assembled.append(request)
        return [
            DeliverableDocumentRef(document_key=k, document_id=i + 1, version=1, markdown_chars=100)
            for i, k in enumerate(request.documents)
        ]

    def all(self) -> list:
        return [self.prepare_deliverable, self.generate_section, self.assemble_deliverable]


async def run_month(
    env: WorkflowEnvironment, fakes: FakeDeliverableActivities, request: DeliverableRequest, **start: object
):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[DeliverableWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            DeliverableWorkflow.run,
            request,
            id=f"deliverable-{request.client_id}-m{request.month}-{uuid.uuid4().hex[:6]}",
            task_queue=queue,
            **start,  # type: ignore[arg-type]
        )
        result = await handle.result()
        return await handle.query(DeliverableWorkflow.progress), result


async def test_brand_context_first_and_once_then_25_sections_and_five_documents(env):
    fakes = FakeDeliverableActivities()
    progress, result = await run_month(env, fakes, DeliverableRequest(client_id="c1", month=1))

    keys = [r.section_key for r in fakes.requests]
    assert len(keys) == 26 and len(set(keys)) == 26
    assert keys.count("brand_context") == 1
    # Brand Context finished before any other section started.
    assert fakes.events[:2] == [("start", "brand_context"), ("end", "brand_context")]
    assert all(r.document_kind == DocumentKind.DELIVERABLE for r in fakes.requests)
    assert set(keys) == {s.key for s in deliverables.month_sections(1)}

    [assembled] = fakes.assembled
    assert list(assembled.documents) == [d.key for d in deliverables.documents(1)]
    assert len(assembled.sections) == 26
    assert [d.document_key for d in result.documents] == [d.key for d in deliverables.documents(1)]
    assert len(result.documents) == 5
    assert result.total_tokens == 26 * 50
    assert progress.status == "completed" and progress.tokens == 26 * 50
    # The naive counterfactual is per document: each request names its document's six sections.
    assert all(len(r.document_sections) == 6 and r.section_key in r.document_sections for r in fakes.requests)


async def test_later_month_passes_the_digest_by_reference(env):
    fakes = FakeDeliverableActivities()
    _, result = await run_month(env, fakes, DeliverableRequest(client_id="c1", month=2))
    assert result.month == 2
    assert {r.context_ref for r in fakes.requests} == {"digest-1"}


async def test_a_month_outside_1_to_8_fails_before_any_section(env):
    fakes = FakeDeliverableActivities()
    with pytest.raises(WorkflowFailureError) as info:
        await run_month(env, fakes, DeliverableRequest(client_id="c1", month=9))
    assert "1–8" in str(info.value.cause.cause)
    assert fakes.requests == [] and fakes.assembled == []


async def test_an_announced_newer_version_gets_one_more_round_on_that_version(env):
    fakes = FakeDeliverableActivities()
    _, result = await run_month(
        env,
        fakes,
        DeliverableRequest(client_id="c1", month=1, regenerate=["brand_context"]),
        start_signal="client_updated",
        start_signal_args=[5],
    )
    assert result.client_version == 5
    assert len(fakes.requests) == 2 * 26  # two rounds; unchanged sections come from the cache in real runs
    assert {r.client_version for r in fakes.requests[26:]} == {5}
    assert [a.client_version for a in fakes.assembled] == [5]
    # Sections the operator asked to regenerate are requested fresh; the others are not.
    fresh = {r.section_key for r in fakes.requests if r.fresh}
    assert fresh == {"brand_context"}


class BatchingDeliverableFakes(FakeDeliverableActivities):
    """prepare_deliverable batches the month's KPIs; the batch activity records its members."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[SectionGroupRequest] = []

    @activity.defn(name="prepare_deliverable")
    async def prepare_deliverable(self, request: DeliverableRequest) -> DeliverableInputs:
        inputs = await super().prepare_deliverable(request)
        kpis = [k for k in inputs.sections if k.endswith("__kpis")]
        return inputs.model_copy(update={"batches": [kpis]})

    @activity.defn(name="generate_section_batch")
    async def generate_section_batch(self, request: SectionGroupRequest) -> SectionGroupResult:
        self.batches.append(request)
        return SectionGroupResult(
            sections=[
                SectionResult(section_key=m.section_key, section_id=100 + i, model="m", tier="economy", batch_size=5)
                for i, m in enumerate(request.members)
            ]
        )

    def all(self) -> list:
        return [*super().all(), self.generate_section_batch]


async def test_a_batch_of_the_months_kpis_is_one_activity_with_each_members_own_request(env):
    fakes = BatchingDeliverableFakes()
    progress, result = await run_month(env, fakes, DeliverableRequest(client_id="c1", month=2))
    [batch] = fakes.batches
    kpis = [f"{d.key}__kpis" for d in deliverables.documents(2)]
    assert [m.section_key for m in batch.members] == kpis
    # Each member is the request a section would get alone: its own document, the digest reference.
    assert all(m.context_ref == "digest-1" and m.section_key in m.document_sections for m in batch.members)
    assert not {r.section_key for r in fakes.requests} & set(kpis)
    assert len(result.sections) == 26
    assert [s.section_key for s in fakes.assembled[0].sections if s.batch_size] == kpis
    assert progress.status == "completed" and progress.count("done") == 26


def test_a_month_section_is_labelled_by_its_document_and_title():
    def label(key: str) -> str:
        request = SectionRequest(
            client_id="c1",
            client_version=1,
            section_key=key,
            document_sections=[key],
            document_kind=DocumentKind.DELIVERABLE,
        )
        return section_summary(request)

    assert label("m3_pre_launch_campaign__kpis") == "Pre-Launch Campaign · KPIs"
    assert label("brand_context") == "Brand Context"
    # The month's sections all read apart.
    keys = [s.key for s in deliverables.month_sections(3)]
    assert len({label(k) for k in keys}) == len(keys)
    # A key the catalogue no longer knows (a run recorded before a change) is shown as is.
    assert label("m3_gone_document__kpis") == "m3_gone_document__kpis"
