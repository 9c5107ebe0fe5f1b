"""Replay recorded histories against the current workflow code: a non-deterministic change
(reordered activities, a new branch without `workflow.patched`) fails the build here."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from contracts.models import PlanRequest
from workflows.kinds import WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_are_recorded():
    names = {p.stem for p in HISTORIES}
    assert {
        "business_plan_complete",
        "business_plan_section_failed",
        "business_plan_update_folded_in",
        "business_plan_batched",
        "business_plan_budget_paused",
        "business_plan_failed_crm_told",
        "deliverable_m2",
        "summary_threads_and_client",
        "bulk_batch_with_fallback",
        "bulk_budget_paused",
        "deliverable_batched",
        "deliverable_batched_child",
        "business_plan_local_steps",
        "deliverable_local_steps",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_on_current_code(path: Path):
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))
    assert result.replay_failure is None


@workflow.defn(name="BusinessPlanWorkflow", sandboxed=False)
class ReorderedPlan:
    """The plan workflow with its first step changed, as a careless edit would."""

    @workflow.run
    async def run(self, request: PlanRequest) -> None:
        await workflow.execute_activity("assemble_document", request, start_to_close_timeout=timedelta(seconds=5))


async def test_a_changed_workflow_is_caught():
    """The replay test can fail: a workflow whose first command changed must not replay."""
    path = next(p for p in HISTORIES if p.stem == "business_plan_complete")
    replayer = Replayer(workflows=[ReorderedPlan], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=False
    )
    assert result.replay_failure is not None
