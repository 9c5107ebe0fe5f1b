"""Names and timeouts shared by workflows, workers and starters."""

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities.errors import BATCH_FINAL_ERRORS, BATCH_POLL_FINAL_ERRORS, FINAL_ERRORS, ErrorType


def failure_message(err: BaseException) -> str:
    """The activity's own ApplicationError says what went wrong; the wrapper only says "failed"."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause)


# workflow.patched id of the section-group code path (sections written together in one
# activity); the id keeps the name it was recorded with.
SECTION_GROUPS_PATCH = "section-batches"
# workflow.patched id of the wait on a durable timer for a section refused by a rate limit.
RATE_LIMIT_WAIT_PATCH = "rate-limit-wait"
# workflow.patched id of a document's prepare and assemble steps run as local activities.
LOCAL_STEPS_PATCH = "local-prepare-assemble"


def rate_limit_wait(err: ActivityError) -> timedelta | None:
    """How long a section refused by the provider's rate limit (``RateLimited``, raised by
    activities.rate_limiter) asks to wait; None for any other failure."""
    cause = err.cause
    if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.RATE_LIMITED and cause.details):
        return None
    details = cause.details[0]
    if not isinstance(details, dict) or not isinstance(details.get("retry_after_seconds"), int | float):
        return None
    # At least a second, so a wait rounded to nothing cannot spin.
    return timedelta(seconds=max(1.0, float(details["retry_after_seconds"])))


PREPARE_TIMEOUT = timedelta(seconds=30)
ASSEMBLE_TIMEOUT = timedelta(seconds=60)
# A slow local model can take minutes for one section; a dead worker is noticed by heartbeat.
SECTION_START_TO_CLOSE = timedelta(minutes=15)
SECTION_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
# A section waiting on a paused budget tries again after this even without `budget resume`
# (an auto-pause lifts when its period ends).
BUDGET_RECHECK_AFTER = timedelta(hours=1)

# Which errors no retry can fix is decided in activities.errors; the policies name them.
SECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=FINAL_ERRORS,
)
STORAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=10,
    non_retryable_error_types=FINAL_ERRORS,
)


# The bulk workflow's steps: preparing and collecting read every client, so they heartbeat.
BULK_PREPARE_TIMEOUT = timedelta(minutes=30)
BULK_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
BATCH_SUBMIT_TIMEOUT = timedelta(minutes=10)
BATCH_POLL_TIMEOUT = timedelta(seconds=60)
# A look at a batch is retried as long as the batch may run (its 24 h window): an outage of the
# endpoint must not fail a bulk whose batch is being answered meanwhile.
BATCH_POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,
    non_retryable_error_types=BATCH_POLL_FINAL_ERRORS,
)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
    non_retryable_error_types=BATCH_FINAL_ERRORS,
)
