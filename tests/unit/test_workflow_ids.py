"""Workflow ids are pinned: recorded histories, running workflows and Temporal Schedules carry
them, so a changed id would start a second generation beside a running one."""

from __future__ import annotations

import pytest

from contracts.models import BulkRequest, DeliverableRequest, PlanRequest, SummaryRequest
from domain.sections import DocumentKind, Level
from workflows import kinds
from workflows.ids import bulk_workflow_id, deliverable_workflow_id, plan_workflow_id, summary_workflow_id


def test_document_ids_are_pinned():
    assert plan_workflow_id("clx9demo0001maya") == "plan-clx9demo0001maya"
    assert deliverable_workflow_id("ckx1abc", 1) == "deliverable-ckx1abc-m1"
    assert deliverable_workflow_id("ckx1abc", 8) == "deliverable-ckx1abc-m8"
    assert summary_workflow_id("c5") == "summary-c5"


def test_bulk_ids_are_pinned_and_ignore_order_and_repeats():
    # Values from the code before the registry (workflows/shared.py at 5b78b7f).
    assert bulk_workflow_id(None, "business_plan", "complete") == "bulk-814873467bfeecbd"
    assert bulk_workflow_id(["b", "a", "b"], "business_plan", "essential") == "bulk-4a1171c73ee5d9cb"
    assert bulk_workflow_id(["clx9demo0001maya"], "business_plan", "standard") == "bulk-4c854b5d8ce25bf3"
    assert bulk_workflow_id([], "business_plan", "complete") == "bulk-7f8f5d7442a4ba1e"


def test_a_month_outside_the_programme_or_no_client_has_no_id():
    with pytest.raises(ValueError, match="1–8"):
        deliverable_workflow_id("ckx1abc", 9)
    with pytest.raises(ValueError):
        deliverable_workflow_id("", 1)


def test_the_registry_starts_each_kind_under_its_pinned_id():
    requests = {
        "plan-c7": PlanRequest(client_id="c7", level=Level.ESSENTIAL),
        "deliverable-c7-m2": DeliverableRequest(client_id="c7", month=2),
        "summary-c7": SummaryRequest(client_id="c7"),
        "bulk-4a1171c73ee5d9cb": BulkRequest(
            client_ids=["b", "a"], document_kind=DocumentKind.BUSINESS_PLAN, level=Level.ESSENTIAL
        ),
    }
    for expected, request in requests.items():
        start = kinds.for_request(request).start
        assert start is not None
        assert start.workflow_id(request) == expected
