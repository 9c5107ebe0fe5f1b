"""The fan-out both document workflows share: one section activity per section (or one per batch
of sections chosen at prepare), concurrently, with progress kept for the workflow's query.
Workflow code: deterministic, no I/O."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.plan import PlanActivities
    from workflows import search_attributes as sa
    from workflows.models import (
        DocumentProgress,
        SectionBatchRequest,
        SectionProgress,
        SectionRequest,
        SectionResult,
        SectionStatus,
    )
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
    _done(progress, result)
    return result


async def run_batch(group: list[tuple[SectionProgress, SectionRequest]]) -> list[SectionResult]:
    """One batch activity for several sections, its outcome mirrored into each member's progress."""
    for progress, _ in group:
        progress.status = SectionStatus.RUNNING
    try:
        result = await workflow.execute_activity_method(
            PlanActivities.generate_section_batch,
            SectionBatchRequest(members=[request for _, request in group]),
            start_to_close_timeout=SECTION_START_TO_CLOSE,
            heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
            retry_policy=SECTION_RETRY,
        )
    except ActivityError as err:
        for progress, _ in group:
            progress.status = SectionStatus.FAILED
            progress.error = failure_message(err)
        raise
    for (progress, _), section in zip(group, result.sections, strict=True):
        _done(progress, section)
    return result.sections


def _done(progress: SectionProgress, result: SectionResult) -> None:
    progress.status = SectionStatus.DONE
    progress.model = result.model
    progress.tokens = result.prompt_tokens + result.completion_tokens
    progress.cost = result.cost
    progress.cache_tier = result.cache_tier


async def run_sections(
    work: list[tuple[SectionProgress, SectionRequest]], what: str, batches: list[list[str]] | None = None
) -> list[SectionResult]:
    """Every section concurrently (each batch as one activity); after all have finished, fail if
    any failed. Results come in the order of ``work``.

    Finished sections are stored, so a new run of the document reuses them at no cost.
    """
    by_key = {progress.section_key: (progress, request) for progress, request in work}
    groups = [[by_key[k] for k in batch if k in by_key] for batch in batches or []]
    groups = [g for g in groups if g]
    batched = {progress.section_key for group in groups for progress, _ in group}
    groups += [[item] for item in work if item[0].section_key not in batched]
    # Scheduled in reading order (a batch where its first member is).
    order = {progress.section_key: i for i, (progress, _) in enumerate(work)}
    groups.sort(key=lambda group: order[group[0][0].section_key])

    async def run(group: list[tuple[SectionProgress, SectionRequest]]) -> list[SectionResult]:
        if len(group) == 1 and group[0][0].section_key not in batched:
            return [await run_section(*group[0])]
        return await run_batch(group)

    outcomes = await asyncio.gather(*(run(g) for g in groups), return_exceptions=True)
    failed = [
        f"{progress.section_key}: {progress.error}"
        for group, outcome in zip(groups, outcomes, strict=True)
        if isinstance(outcome, BaseException)
        for progress, _ in group
    ]
    if failed:
        raise ApplicationError(
            f"{len(failed)} of {len(work)} sections of the {what} failed: " + "; ".join(failed),
            type="SectionsFailed",
            non_retryable=True,
        )
    results = {r.section_key: r for outcome in outcomes if isinstance(outcome, list) for r in outcome}
    return [results[progress.section_key] for progress, _ in work]
