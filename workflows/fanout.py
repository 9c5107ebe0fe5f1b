"""The fan-out both document workflows share: one section activity per section, concurrently,
with progress kept for the workflow's query. Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.plan import PlanActivities
    from workflows import search_attributes as sa
    from workflows.models import DocumentProgress, SectionProgress, SectionRequest, SectionResult, SectionStatus
    from workflows.shared import (
        BUDGET_RECHECK_AFTER,
        SECTION_HEARTBEAT_TIMEOUT,
        SECTION_RETRY,
        SECTION_START_TO_CLOSE,
        failure_message,
    )

# The signal `wavelaunch budget resume` sends to every workflow waiting on a paused budget.
BUDGET_RESUMED = "budget_resumed"


def set_status(progress: DocumentProgress, status: str) -> None:
    """Record a document workflow's status for its query and for the Web UI's filter."""
    progress.status = status
    workflow.upsert_search_attributes([sa.STATUS.value_set(status)])


class BudgetGate:
    """Where sections refused by a paused budget wait, durably, for the ``budget_resumed`` signal
    (or a long timeout, after which they try again). Each document workflow holds one."""

    def __init__(self) -> None:
        self.resumes = 0
        self.waiting = 0

    def resume(self) -> None:
        self.resumes += 1

    async def wait(self, document: DocumentProgress, then: str = "generating") -> None:
        """Wait for the signal (or the re-check timeout); ``then``: the status to show after."""
        seen = self.resumes
        self.waiting += 1
        set_status(document, "paused")
        try:
            await workflow.wait_condition(lambda: self.resumes > seen, timeout=BUDGET_RECHECK_AFTER)
        except TimeoutError:
            pass  # re-check: the period may have turned, lifting an auto-pause
        finally:
            self.waiting -= 1
        if not self.waiting:
            set_status(document, then)


def waits_for_budget(err: ActivityError) -> bool:
    """A section refused by a paused budget, with the worker configured to wait (not fail)."""
    cause = err.cause
    if not (isinstance(cause, ApplicationError) and cause.type == "BudgetPaused"):
        return False
    details = cause.details[0] if cause.details else None
    return isinstance(details, dict) and details.get("on_pause") == "wait"


async def run_section(
    progress: SectionProgress,
    request: SectionRequest,
    document: DocumentProgress | None = None,
    gate: BudgetGate | None = None,
) -> SectionResult:
    """One section activity, its outcome mirrored into ``progress``; a section refused by a
    paused budget waits at ``gate`` and runs again (only on that error, so recorded histories
    replay unchanged)."""
    while True:
        progress.status = SectionStatus.RUNNING
        try:
            result = await workflow.execute_activity_method(
                PlanActivities.generate_section,
                request,
                start_to_close_timeout=SECTION_START_TO_CLOSE,
                heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
                retry_policy=SECTION_RETRY,
            )
        except ActivityError as err:
            progress.error = failure_message(err)
            if gate is not None and document is not None and waits_for_budget(err):
                progress.status = SectionStatus.PAUSED
                await gate.wait(document)
                continue
            progress.status = SectionStatus.FAILED
            raise
        break
    progress.error = None
    progress.status = SectionStatus.DONE
    progress.model = result.model
    progress.tokens = result.prompt_tokens + result.completion_tokens
    progress.cost = result.cost
    progress.cache_tier = result.cache_tier
    return result


async def run_sections(
    work: list[tuple[SectionProgress, SectionRequest]],
    what: str,
    document: DocumentProgress | None = None,
    gate: BudgetGate | None = None,
) -> list[SectionResult]:
    """Every section concurrently; after all have finished, fail if any failed.

    Finished sections are stored, so a new run of the document reuses them at no cost.
    """
    results = await asyncio.gather(*(run_section(p, r, document, gate) for p, r in work), return_exceptions=True)
    failed = [
        f"{p.section_key}: {p.error}" for (p, _), r in zip(work, results, strict=True) if isinstance(r, BaseException)
    ]
    if failed:
        raise ApplicationError(
            f"{len(failed)} of {len(results)} sections of the {what} failed: " + "; ".join(failed),
            type="SectionsFailed",
            non_retryable=True,
        )
    return [r for r in results if isinstance(r, SectionResult)]
