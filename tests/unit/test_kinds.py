"""The registry of document kinds is the one list of workflows: every workflow class in
workflows/ is in it, and what it says matches the workflows themselves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from temporalio.common import SearchAttributePair

import workflows
from contracts.models import DeadlineBatchRequest, DeliverableRequest, PlanRequest, SummaryRequest
from domain.sections import Level
from workflows import kinds
from workflows import search_attributes as sa


def _defined_workflows() -> set[type]:
    found = set()
    for module in pkgutil.iter_modules(workflows.__path__):
        loaded = importlib.import_module(f"workflows.{module.name}")
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if value.__module__ == loaded.__name__ and hasattr(value, "__temporal_workflow_definition"):
                found.add(value)
    return found


def test_every_workflow_is_registered_once():
    assert len(kinds.WORKFLOWS) == len(set(kinds.WORKFLOWS))
    assert set(kinds.WORKFLOWS) == _defined_workflows()


def test_each_kind_is_found_by_its_workflow_type_and_request():
    for kind in kinds.KINDS:
        assert kinds.by_workflow_type(kind.workflow_type) is kind
        assert kinds.for_request(kind.request.model_construct()) is kind
    assert kinds.by_workflow_type("NoSuchWorkflow") is None
    with pytest.raises(TypeError, match="starts no document workflow"):
        kinds.for_request(Level)  # type: ignore[arg-type]


def test_progress_queries_belong_to_their_workflows():
    for kind in kinds.KINDS:
        assert getattr(kind.workflow, kind.progress.__name__) is kind.progress


def test_retry_runs_plans_and_months_only_and_a_child_is_never_started_from_outside():
    assert [k.name for k in kinds.KINDS if k.retryable] == ["plan", "deliverable"]
    assert [k.name for k in kinds.KINDS if k.follows_updates] == ["plan", "deliverable"]
    assert kinds.DEADLINE_BATCH.start is None
    assert kinds.for_request(DeadlineBatchRequest.model_construct()) is kinds.DEADLINE_BATCH


def test_search_attributes_and_memo_of_a_start():
    def named(pairs: list[SearchAttributePair]) -> dict[str, object]:
        return {p.key.name: p.value for p in pairs}

    plan, month, summary = (
        PlanRequest(client_id="c1", level=Level.ESSENTIAL),
        DeliverableRequest(client_id="c1", month=3),
        SummaryRequest(client_id="c1", include_client_summary=False),
    )
    assert kinds.PLAN.start and kinds.DELIVERABLE.start and kinds.SUMMARY.start
    assert named(kinds.PLAN.start.search_attributes(plan)) == {
        sa.CLIENT_ID.name: "c1",
        sa.DOCUMENT_KIND.name: "business_plan",
        sa.LEVEL.name: "essential",
    }
    assert named(kinds.DELIVERABLE.start.search_attributes(month))[sa.LEVEL.name] == "m3"
    assert named(kinds.SUMMARY.start.search_attributes(summary))[sa.LEVEL.name] == "threads"
    assert kinds.DELIVERABLE.start.memo(month) == {"client_id": "c1", "month": 3}
