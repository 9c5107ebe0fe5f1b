"""Record workflow histories for the replay tests:
`uv run python -m tests.workflows.record_histories [NAME ...]`.

Run it only when a workflow change is meant to be incompatible (with a new workflow type or a
`workflow.patched` branch); the recorded files are what the replay test holds new code to.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import BulkRequest, DeliverableRequest, PlanRequest, SummaryRequest
from domain.sections import Level
from service.wiring import ensure_search_attributes
from tests.conftest import venv_binary
from tests.workflows.test_budget_pause import PausingActivities
from tests.workflows.test_bulk import FakeBulkActivities
from tests.workflows.test_business_plan import BatchingFakes, FakeActivities
from tests.workflows.test_deadline_batch import FakeBatchActivities
from tests.workflows.test_deliverable import FakeDeliverableActivities
from tests.workflows.test_summary import FakeSummaryActivities
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deadline_batch import DeadlineBatchWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.summary import SummaryWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"

CASES = {
    "business_plan_complete": (FakeActivities(), PlanRequest(client_id="c1", level=Level.COMPLETE)),
    "business_plan_section_failed": (
        FakeActivities(fail_sections={"market_analysis"}),
        PlanRequest(client_id="c2", level=Level.ESSENTIAL),
    ),
    "business_plan_update_folded_in": (FakeActivities(), PlanRequest(client_id="c3", level=Level.ESSENTIAL)),
    # The "section-batches" patch: Operations and Team written by one batch activity.
    "business_plan_batched": (BatchingFakes(), PlanRequest(client_id="c5", level=Level.COMPLETE)),
    # One section refused by a paused budget: the wait (its re-check timer fires), then again.
    "business_plan_budget_paused": (PausingActivities(times=1), PlanRequest(client_id="c5", level=Level.ESSENTIAL)),
    # The "crm-notify-failed" patch: a failed plan runs document_failed (the CRM outbox) first.
    "business_plan_failed_crm_told": (
        FakeActivities(fail_sections={"market_analysis"}),
        PlanRequest(client_id="c6", level=Level.ESSENTIAL),
    ),
    # The "local-prepare-assemble" patch: prepare and assemble as local activities (markers).
    "business_plan_local_steps": (FakeActivities(), PlanRequest(client_id="c8", level=Level.COMPLETE)),
}
DELIVERABLE_CASES = {
    "deliverable_m2": (FakeDeliverableActivities(), DeliverableRequest(client_id="c4", month=2)),
    # The "local-prepare-assemble" patch, for a month.
    "deliverable_local_steps": (FakeDeliverableActivities(), DeliverableRequest(client_id="c8", month=3)),
    # The "deadline-batch" patch: a month due in 3 days; its sections through one Batch API batch
    # (a child DeadlineBatchWorkflow, recorded as deliverable_batched_child), three looks, one
    # line left unanswered and written direct on flex.
    "deliverable_batched": (
        FakeBatchActivities(polls_to_complete=3),
        DeliverableRequest(client_id="c7", month=2, within=timedelta(days=3), batch_poll_seconds=600),
    ),
}
SUMMARY_CASES = {
    "summary_threads_and_client": (FakeSummaryActivities(), SummaryRequest(client_id="c1")),
}
BULK_CASES = {
    # One batch awaited over three polls, one line falling back to a direct call, two plans.
    "bulk_batch_with_fallback": (
        FakeBulkActivities(polls_to_complete=3),
        BulkRequest(client_ids=["c5", "c6"], level=Level.ESSENTIAL, poll_seconds=60),
    ),
    # The "bulk-budget-wait" patch: the submission refused by a paused budget once, waited out.
    "bulk_budget_paused": (
        FakeBulkActivities(polls_to_complete=1, refused_submits=1),
        BulkRequest(client_ids=["c5", "c6"], level=Level.ESSENTIAL, poll_seconds=60),
    ),
}
# Signal-with-start for the cases that announce a newer client version.
SIGNALS = {"business_plan_update_folded_in": 5}


async def record(names: list[str]) -> None:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=venv_binary("temporal-test-server")
    ) as env:
        await ensure_search_attributes(env.client, "default")
        for name, (fakes, request) in CASES.items():
            if names and name not in names:
                continue
            queue = f"record-{uuid.uuid4()}"
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[BusinessPlanWorkflow],
                activities=[
                    fakes.prepare_plan,
                    fakes.generate_section,
                    fakes.assemble_document,
                    fakes.document_failed,
                    *([fakes.generate_section_batch] if isinstance(fakes, BatchingFakes) else []),
                ],
            ):
                signal = {}
                if name in SIGNALS:
                    signal = {"start_signal": "client_updated", "start_signal_args": [SIGNALS[name]]}
                handle = await env.client.start_workflow(
                    BusinessPlanWorkflow.run, request, id=f"plan-{request.client_id}", task_queue=queue, **signal
                )
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                history = await handle.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
        for name, (fakes, request) in DELIVERABLE_CASES.items():
            if names and name not in names:
                continue
            queue = f"record-{uuid.uuid4()}"
            workflows = [DeliverableWorkflow, DeadlineBatchWorkflow]
            async with Worker(env.client, task_queue=queue, workflows=workflows, activities=fakes.all()):
                handle = await env.client.start_workflow(
                    DeliverableWorkflow.run,
                    request,
                    id=f"deliverable-{request.client_id}-m{request.month}",
                    task_queue=queue,
                )
                try:
                    await handle.result()
                except WorkflowFailureError:
                    pass
                history = await handle.fetch_history()
                children = [
                    e.child_workflow_execution_started_event_attributes.workflow_execution
                    for e in history.events
                    if e.HasField("child_workflow_execution_started_event_attributes")
                ]
                child_histories = [
                    await env.client.get_workflow_handle(c.workflow_id, run_id=c.run_id).fetch_history()
                    for c in children
                ]
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
            for child in child_histories:
                (HISTORIES / f"{name}_child.json").write_text(child.to_json())
                print(f"recorded {name}_child: {len(child.events)} events")
        for name, (fakes, request) in SUMMARY_CASES.items():
            if names and name not in names:
                continue
            queue = f"record-{uuid.uuid4()}"
            async with Worker(env.client, task_queue=queue, workflows=[SummaryWorkflow], activities=fakes.all()):
                handle = await env.client.start_workflow(
                    SummaryWorkflow.run, request, id=f"summary-{request.client_id}", task_queue=queue
                )
                await handle.result()
                history = await handle.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")

        for name, (fakes, request) in BULK_CASES.items():
            if names and name not in names:
                continue
            queue = f"record-{uuid.uuid4()}"
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[BulkRegenerationWorkflow, BusinessPlanWorkflow],
                activities=fakes.all(),
            ):
                handle = await env.client.start_workflow(
                    BulkRegenerationWorkflow.run, request, id="bulk-recorded", task_queue=queue
                )
                await handle.result()
                history = await handle.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")


if __name__ == "__main__":
    # Names record only those cases; keep older recordings, they hold new code to old runs.
    asyncio.run(record(sys.argv[1:]))
