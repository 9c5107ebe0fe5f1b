"""The retry decision: which failures Temporal retries, and which are final.

Activities raise a final failure with ``final`` (a wrong client, section or month: no retry can
fix it) and turn an LLM failure into Temporal's terms with ``as_application_error`` (llm.errors
says whether that failure is worth retrying). The workflows' retry policies (workflows.shared)
name the same final types in ``non_retryable_error_types``, from the lists here, so the two
cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from temporalio.exceptions import ApplicationError

from llm import errors as llm_errors
from llm.errors import LLMError


class ErrorType(StrEnum):
    """The ApplicationError types activities raise (LLM failures carry llm.errors' kinds)."""

    # The request names something that is not there, or cannot be: final.
    UNKNOWN_CLIENT = "UnknownClient"
    UNKNOWN_SECTION = "UnknownSection"
    UNKNOWN_CONTEXT = "UnknownContext"
    UNKNOWN_THREAD = "UnknownThread"
    INVALID_MONTH = "InvalidMonth"
    UNSUPPORTED_DOCUMENT_KIND = "UnsupportedDocumentKind"
    # Every answer the model gave was invalid, after the writer's own retries: final.
    INVALID_MODEL_OUTPUT = "InvalidModelOutput"
    # A budget refused the call (activities.budget_guard): final; a paused budget may make the
    # workflow wait for `budget resume` (its details say so) rather than fail.
    BUDGET_EXCEEDED = "BudgetExceeded"
    BUDGET_PAUSED = "BudgetPaused"
    # The provider's rate limit asks for a longer wait than an activity should sleep: the
    # workflow waits on a durable timer instead (activities.rate_limiter).
    RATE_LIMITED = "RateLimited"
    # A bulk request set with nothing (or too much) to send to the Batch API: final.
    EMPTY_BATCH = "EmptyBatch"
    BATCH_TOO_LARGE = "BatchTooLarge"


def final(kind: ErrorType, cause: Exception | str) -> ApplicationError:
    """A failure no retry can fix; its message (``cause``'s) says what to do."""
    return ApplicationError(str(cause), type=kind.value, non_retryable=True)


def as_application_error(err: LLMError) -> ApplicationError:
    """Temporal's view of an LLM failure: its type, whether to retry, and when."""
    delay = timedelta(seconds=err.retry_after) if err.retry_after is not None else None
    return ApplicationError(str(err), type=err.kind, non_retryable=not err.retryable, next_retry_delay=delay)


def _names(*types: str) -> list[str]:
    return [str(t) for t in types]


# Never retried by a document's steps (sections, storage steps). Final failures also say so
# themselves (non_retryable); the list keeps a failure final whoever raised it. The order is
# what recorded histories hold.
FINAL_ERRORS = _names(
    ErrorType.UNKNOWN_CLIENT,
    ErrorType.UNKNOWN_SECTION,
    ErrorType.INVALID_MONTH,
    ErrorType.UNKNOWN_THREAD,
    ErrorType.INVALID_MODEL_OUTPUT,
    *llm_errors.FINAL_KINDS,
    ErrorType.BUDGET_EXCEEDED,
)
# A look at a Batch API batch: also a batch that is gone, or a request set without one.
BATCH_POLL_FINAL_ERRORS = [*FINAL_ERRORS, *_names(llm_errors.BATCH_NOT_FOUND, ErrorType.EMPTY_BATCH)]
# The other Batch API steps: also a bulk asked for a document kind it cannot write.
BATCH_FINAL_ERRORS = [*BATCH_POLL_FINAL_ERRORS, *_names(ErrorType.UNSUPPORTED_DOCUMENT_KIND)]
