"""What a document workflow does when it fails: the CRM is told (through the outbox), then the
failure goes on as before.

A newer code path: behind ``workflow.patched(CRM_FAILURE_PATCH)``, so histories of runs that
failed before it replay without it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.crm_notify import NotifyActivities
    from contracts.models import DocumentFailure
    from domain.sections import DocumentKind
    from workflows.shared import STORAGE_RETRY

CRM_FAILURE_PATCH = "crm-notify-failed"
# However long Postgres is away, the failure itself is not held back for more than this.
NOTIFY_DEADLINE = timedelta(minutes=30)


def _reason(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__


async def tell_crm_failed(err: Exception, client_id: str, kind: DocumentKind, month: int | None = None) -> None:
    """Enqueue ``document.failed`` for this run unless it was cancelled (an archived client);
    a notification that cannot be stored is logged and never hides the failure."""
    if is_cancelled_exception(err) or not workflow.patched(CRM_FAILURE_PATCH):
        return
    info = workflow.info()
    failure = DocumentFailure(
        client_id=client_id,
        kind=kind,
        workflow_id=info.workflow_id,
        run_id=info.run_id,
        month=month,
        reason=_reason(err),
    )
    try:
        await workflow.execute_activity_method(
            NotifyActivities.document_failed,
            failure,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=NOTIFY_DEADLINE,
            retry_policy=STORAGE_RETRY,
        )
    except ActivityError as notify_err:
        workflow.logger.warning("the CRM was not told of the failure: %s", notify_err)
