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
    from workflows.shared import SECTION_HEARTBEAT_TIMEOUT, SECTION_RETRY, SECTION_START_TO_CLOSE, failure_message


def set_status(progress: DocumentProgress, status: str) -> None:
    """Record a document workflow's status for its query and for the Web UI's filter."""
    progress.status = status
    workflow.upsert_search_attributes([sa.STATUS.value_set(status)])


async def run_section(progress: SectionProgress, request: SectionRequest) -> SectionResult:
    """One section activity, its outcome mirrored into ``progress``."""
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
        progress.status = SectionStatus.FAILED
        progress.error = failure_message(err)
        raise
    progress.status = SectionStatus.DONE
    progress.model = result.model
    progress.tokens = result.prompt_tokens + result.completion_tokens
    progress.cost = result.cost
    progress.cache_tier = result.cache_tier
    return result


async def run_sections(work: list[tuple[SectionProgress, SectionRequest]], what: str) -> list[SectionResult]:
    """Every section concurrently; after all have finished, fail if any failed.

    Finished sections are stored, so a new run of the document reuses them at no cost.
    """
    results = await asyncio.gather(*(run_section(p, r) for p, r in work), return_exceptions=True)
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
