"""The fan-out both document workflows share: one section activity per section (or one per section
group chosen at prepare), concurrently, with progress kept for the workflow's query; a
section refused by a paused budget waits durably for ``budget_resumed``. Workflow code:
deterministic, no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.errors import ErrorType
    from activities.section_generation import SectionActivities
    from contracts.models import (
        DocumentProgress,
        DocumentStatus,
        SectionGroupRequest,
        SectionProgress,
        SectionRequest,
        SectionResult,
        SectionStatus,
    )
    from domain import catalogue
    from domain.catalogue import deliverables
    from domain.sections import DocumentKind
    from tokenopt.service_tiers import ServiceTier, document_tier
    from workflows import search_attributes as sa
    from workflows.shared import (
        BUDGET_RECHECK_AFTER,
        LOCAL_STEPS_PATCH,
        RATE_LIMIT_WAIT_PATCH,
        SECTION_HEARTBEAT_TIMEOUT,
        SECTION_RETRY,
        SECTION_START_TO_CLOSE,
        failure_message,
        rate_limit_wait,
    )

# The signal `wavelaunch budget resume` sends to every workflow waiting on a paused budget.
BUDGET_RESUMED = "budget_resumed"

In = TypeVar("In")
Out = TypeVar("Out")


async def run_step(
    step: Callable[[Any, In], Awaitable[Out]],
    arg: In,
    *,
    document: Statused,
    status: DocumentStatus,
    limit: timedelta,
    retry: RetryPolicy,
    summary: str | None = None,
) -> Out:
    """A document's short storage step (prepare, assemble), ``document`` in ``status`` while it
    runs, as a local activity: it runs inside the workflow task that needs it, so it costs no
    trip through the server's task queue (about a workflow task's latency each, measured by
    `wavelaunch bench throughput`). Runs recorded before the patch replay with the step as an
    ordinary activity. ``summary``: its label in the Web UI."""
    local = workflow.patched(LOCAL_STEPS_PATCH)
    # A local step ends in the workflow task that began it, before the server sees the status:
    # the progress query shows it, the search attribute is not written (each write is a
    # visibility update on the server, about 9 ms of its CPU, `wavelaunch bench throughput`).
    set_status(document, status, searchable=not local)
    if local:
        try:
            return await workflow.execute_local_activity_method(
                step, arg, start_to_close_timeout=limit, retry_policy=retry, summary=summary
            )
        except ApplicationError as err:
            # A local activity's failure arrives unwrapped; wrapped as an ordinary activity's is,
            # callers (and whoever reads the workflow's failure) see one shape either way.
            raise ActivityError(
                "Activity task failed",
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=getattr(step, "__name__", "step"),
                activity_id="",
                retry_state=None,
            ) from err
    return await workflow.execute_activity_method(
        step, arg, start_to_close_timeout=limit, retry_policy=retry, summary=summary
    )


def section_summary(request: SectionRequest) -> str:
    """A section activity's label in the Web UI, so a document's many read apart: the section's
    title, after its document's for a deliverable ("Pre-Launch Campaign · KPIs"); its key when
    the catalogue does not know it (a run recorded before a catalogue change must still replay)."""
    try:
        spec = catalogue.spec(request.document_kind, request.section_key)
        if request.document_kind is DocumentKind.DELIVERABLE:
            document_key, _ = deliverables.split_section_key(request.section_key)
            if document_key is not None:
                return f"{deliverables.document(document_key).title} · {spec.title}"
        return spec.title
    except ValueError:  # UnknownSection, UnknownDocument
        return request.section_key


class Statused(Protocol):
    """A workflow's progress (a document's, or the bulk regeneration's): what its status is."""

    status: DocumentStatus


def run_deadline(deadline: datetime | None, within: timedelta | None) -> datetime | None:
    """The run's deadline: the absolute one asked for, else ``within`` from the run's start (a
    scheduled run), else none (interactive)."""
    if deadline is not None or within is None:
        return deadline
    return workflow.info().start_time + within


def service_tier(deadline: datetime | None) -> ServiceTier:
    """The cheapest tier a direct call of the work may take now (workflow time) and still meet
    ``deadline``; what goes through the Batch API is decided before (workflows.deadline_batch)."""
    time_left = deadline - workflow.now() if deadline is not None else None
    return document_tier(time_left, batch_available=False)


def set_status(progress: Statused, status: DocumentStatus, *, searchable: bool = True) -> None:
    """Record a workflow's status for its query and (``searchable``) for the Web UI's filter."""
    progress.status = status
    if searchable:
        workflow.upsert_search_attributes([sa.STATUS.value_set(status)])


class BudgetGate:
    """Where sections refused by a paused budget wait, durably, for the ``budget_resumed`` signal
    (or a long timeout, after which they try again). Each document workflow holds one."""

    def __init__(self) -> None:
        self.resumes = 0
        self.waiting = 0

    def resume(self) -> None:
        self.resumes += 1

    async def wait(self, document: Statused, then: DocumentStatus | None = DocumentStatus.GENERATING) -> None:
        """Wait for the signal (or the re-check timeout); ``then``: the status to show after
        (None: what runs next sets it)."""
        seen = self.resumes
        self.waiting += 1
        set_status(document, DocumentStatus.PAUSED)
        try:
            await workflow.wait_condition(lambda: self.resumes > seen, timeout=BUDGET_RECHECK_AFTER)
        except TimeoutError:
            pass  # re-check: the period may have turned, lifting an auto-pause
        finally:
            self.waiting -= 1
        if not self.waiting and then is not None:
            set_status(document, then)


class WaitsOnBudget:
    """A workflow whose work a paused budget can hold: the gate it waits at, and the signal
    (``budget_resumed``, sent by `wavelaunch budget resume`) that opens it."""

    def __init__(self) -> None:
        self._budget = BudgetGate()

    @workflow.signal
    def budget_resumed(self) -> None:
        """A paused budget was resumed: the work it refused runs again."""
        self._budget.resume()


class FollowsClientUpdates(WaitsOnBudget):
    """A document workflow: it also folds in a newer client snapshot announced while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self._regenerate: set[str] = set()
        # The newest client version announced while running (signal), folded in after a round.
        self._announced_version = 0

    @workflow.signal
    def client_updated(self, version: int) -> None:
        """A newer client snapshot exists: write it in after the current round, not in a second run."""
        self._announced_version = max(self._announced_version, version)


def waits_for_budget(err: ActivityError) -> bool:
    """A section refused by a paused budget, with the worker configured to wait (not fail)."""
    cause = err.cause
    if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.BUDGET_PAUSED):
        return False
    details = cause.details[0] if cause.details else None
    return isinstance(details, dict) and details.get("on_pause") == "wait"


async def _until_not_paused(
    call: Callable[[], Awaitable[list[SectionResult]]],
    members: list[SectionProgress],
    document: Statused | None,
    gate: BudgetGate | None,
) -> list[SectionResult]:
    """Run ``call`` (one section or one section-group activity), mirroring its outcome into ``members``;
    refused by a paused budget, it waits at ``gate`` and runs again; refused by the provider's
    rate limit, it shows as waiting, sleeps on a durable timer and runs again (only on those
    errors, so recorded histories replay unchanged)."""
    while True:
        for progress in members:
            progress.status = SectionStatus.RUNNING
        try:
            results = await call()
        except ActivityError as err:
            for progress in members:
                progress.error = failure_message(err)
            if (delay := rate_limit_wait(err)) is not None and workflow.patched(RATE_LIMIT_WAIT_PATCH):
                for progress in members:
                    progress.status = SectionStatus.WAITING
                await workflow.sleep(delay)
                continue
            if gate is not None and document is not None and waits_for_budget(err):
                for progress in members:
                    progress.status = SectionStatus.PAUSED
                await gate.wait(document)
                continue
            for progress in members:
                progress.status = SectionStatus.FAILED
            raise
        for progress, result in zip(members, results, strict=True):
            mark_done(progress, result)
        return results


async def run_section(
    progress: SectionProgress,
    request: SectionRequest,
    document: Statused | None = None,
    gate: BudgetGate | None = None,
) -> SectionResult:
    """One section activity, its outcome mirrored into ``progress``."""

    async def call() -> list[SectionResult]:
        return [
            await workflow.execute_activity_method(
                SectionActivities.generate_section,
                request,
                summary=section_summary(request),
                start_to_close_timeout=SECTION_START_TO_CLOSE,
                heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
                retry_policy=SECTION_RETRY,
            )
        ]

    [result] = await _until_not_paused(call, [progress], document, gate)
    return result


async def run_group(
    group: list[tuple[SectionProgress, SectionRequest]],
    document: DocumentProgress | None = None,
    gate: BudgetGate | None = None,
) -> list[SectionResult]:
    """One section-group activity for several sections, its outcome mirrored into each member's progress."""

    requests = [request for _, request in group]
    summary = f"{len(requests)} sections in one call: " + ", ".join(section_summary(r) for r in requests)

    async def call() -> list[SectionResult]:
        result = await workflow.execute_activity_method(
            SectionActivities.generate_section_group,
            SectionGroupRequest(members=requests),
            summary=summary,
            start_to_close_timeout=SECTION_START_TO_CLOSE,
            heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
            retry_policy=SECTION_RETRY,
        )
        return result.sections

    return await _until_not_paused(call, [progress for progress, _ in group], document, gate)


def mark_done(progress: SectionProgress, result: SectionResult) -> None:
    """A section finished: its figures shown in the workflow's progress."""
    progress.error = None
    progress.status = SectionStatus.DONE
    progress.model = result.model
    progress.tokens = result.total_tokens
    progress.cost = result.cost
    progress.cache_tier = result.cache_tier


async def run_sections(
    work: list[tuple[SectionProgress, SectionRequest]],
    what: str,
    batches: list[list[str]] | None = None,
    document: DocumentProgress | None = None,
    gate: BudgetGate | None = None,
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
            return [await run_section(*group[0], document, gate)]
        return await run_group(group, document, gate)

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
