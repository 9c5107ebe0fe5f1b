"""One place decides retryability (activities.errors), and the activity names stay those that
recorded histories and running workflows schedule."""

from __future__ import annotations

import httpx
import openai
import pytest
from temporalio.activity import _Definition

from activities.bulk import BulkActivities
from activities.crm_notify import NotifyActivities
from activities.deliverable import DeliverableActivities
from activities.errors import BATCH_FINAL_ERRORS, BATCH_POLL_FINAL_ERRORS, FINAL_ERRORS, ErrorType, final
from activities.plan import PlanActivities
from activities.section_generation import SectionActivities
from activities.summary import SummaryActivities
from llm.errors import FINAL_KINDS, map_openai_error
from workflows.shared import BATCH_POLL_RETRY, BATCH_RETRY, SECTION_RETRY, STORAGE_RETRY

# What the retry policies listed before the decision moved to activities.errors: ScheduleActivity
# commands carry these lists, so they stay as they were, in this order.
RECORDED_FINAL = [
    "UnknownClient",
    "UnknownSection",
    "InvalidMonth",
    "UnknownThread",
    "InvalidModelOutput",
    "LLMAuthenticationError",
    "LLMPermissionDenied",
    "LLMModelNotFound",
    "LLMBadRequest",
    "BudgetExceeded",
]


def test_the_retry_policies_name_the_final_errors_of_activities_errors():
    assert FINAL_ERRORS == RECORDED_FINAL
    assert BATCH_POLL_FINAL_ERRORS == [*RECORDED_FINAL, "LLMBatchNotFound", "EmptyBatch"]
    assert BATCH_FINAL_ERRORS == [*RECORDED_FINAL, "LLMBatchNotFound", "EmptyBatch", "UnsupportedDocumentKind"]
    assert SECTION_RETRY.non_retryable_error_types == STORAGE_RETRY.non_retryable_error_types == FINAL_ERRORS
    assert BATCH_POLL_RETRY.non_retryable_error_types == BATCH_POLL_FINAL_ERRORS
    assert BATCH_RETRY.non_retryable_error_types == BATCH_FINAL_ERRORS
    assert all(type(name) is str for name in BATCH_FINAL_ERRORS)


# What openai raises for each status (its own subclass where it has one).
STATUS_ERRORS = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    408: openai.APIStatusError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    503: openai.InternalServerError,
}
REQUEST = httpx.Request("POST", "http://llm.test/v1/chat/completions")


def _failures() -> list[Exception]:
    out: list[Exception] = [
        cls("refused", response=httpx.Response(status, request=REQUEST), body=None)
        for status, cls in STATUS_ERRORS.items()
    ]
    return [*out, openai.APIConnectionError(request=REQUEST), openai.APITimeoutError(request=REQUEST)]


@pytest.mark.parametrize("failure", _failures(), ids=lambda f: type(f).__name__)
def test_an_llm_failure_is_final_exactly_when_its_kind_is_listed_as_final(failure: Exception):
    err = map_openai_error(failure, model="gpt-4.1", endpoint="http://llm.test")
    assert err.retryable == (err.kind not in FINAL_KINDS)
    assert (err.kind in FINAL_ERRORS) == (not err.retryable)


def test_a_final_failure_is_non_retryable_and_typed_as_listed():
    failure = final(ErrorType.UNKNOWN_SECTION, LookupError("no section 'x'"))
    assert failure.non_retryable and failure.type == "UnknownSection" and type(failure.type) is str
    assert failure.type in FINAL_ERRORS and failure.message == "no section 'x'"


def _activity_names(*classes: type) -> set[str]:
    names = set()
    for cls in classes:
        for attr in vars(cls).values():
            if (definition := _Definition.from_callable(attr)) is not None:
                names.add(definition.name)
    return names


def test_activity_names_are_those_histories_record():
    assert _activity_names(PlanActivities) == {"prepare_plan", "assemble_document"}
    assert _activity_names(SectionActivities) == {"generate_section", "generate_section_batch"}
    assert _activity_names(
        PlanActivities,
        SectionActivities,
        DeliverableActivities,
        SummaryActivities,
        BulkActivities,
        NotifyActivities,
    ) == {
        "prepare_plan",
        "generate_section",
        "generate_section_batch",
        "assemble_document",
        "prepare_deliverable",
        "assemble_deliverable",
        "prepare_summary",
        "summarize_thread",
        "summarize_client",
        "prepare_bulk",
        "prepare_sections_batch",
        "submit_batch",
        "poll_batch",
        "cancel_batch",
        "collect_batch",
        "collect_batch_sections",
        "bulk_fallback",
        "document_failed",
    }
