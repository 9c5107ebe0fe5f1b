"""SummaryWorkflow: each thread's summary brought up to date concurrently, then the client summary.

prepare (client and threads checked) -> one summarize_thread activity per thread, concurrently
(each reads only the messages after its previous summary; a thread with nothing new costs
nothing) -> summarize_client (from the thread summaries, never raw messages).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.summary import SummaryActivities
    from contracts.models import (
        ClientSummaryRequest,
        ClientSummaryResult,
        DocumentStatus,
        SectionProgress,
        SectionStatus,
        SummaryFigures,
        SummaryProgress,
        SummaryRequest,
        SummaryResult,
        ThreadSummaryRequest,
        ThreadSummaryResult,
    )
    from domain.catalogue.summaries import CLIENT_SUMMARY
    from workflows.fanout import run_deadline, service_tier, set_status
    from workflows.shared import (
        PREPARE_TIMEOUT,
        RATE_LIMIT_WAIT_PATCH,
        SECTION_HEARTBEAT_TIMEOUT,
        SECTION_RETRY,
        SECTION_START_TO_CLOSE,
        STORAGE_RETRY,
        failure_message,
        rate_limit_wait,
    )


def thread_row(thread_id: str) -> str:
    """A thread's row in the progress query."""
    return f"thread:{thread_id}"


def _done(progress: SectionProgress, result: SummaryFigures) -> None:
    progress.status = SectionStatus.DONE
    progress.model = result.model
    progress.tokens = result.total_tokens
    progress.cost = result.cost
    progress.cache_tier = result.cache_tier


@workflow.defn
class SummaryWorkflow:
    def __init__(self) -> None:
        self._progress: SummaryProgress | None = None

    @workflow.query
    def progress(self) -> SummaryProgress | None:
        return self._progress

    def _set_status(self, status: DocumentStatus) -> None:
        assert self._progress is not None
        set_status(self._progress, status)

    @workflow.run
    async def run(self, request: SummaryRequest) -> SummaryResult:
        self._progress = SummaryProgress(client_id=request.client_id)
        deadline = run_deadline(request.deadline, request.within)
        self._set_status(DocumentStatus.PREPARING)
        inputs = await workflow.execute_activity_method(
            SummaryActivities.prepare_summary,
            request,
            start_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
        )
        rows = {t: SectionProgress(section_key=thread_row(t)) for t in inputs.thread_ids}
        client_row = SectionProgress(section_key=CLIENT_SUMMARY.key) if request.include_client_summary else None
        self._progress.sections = [*rows.values(), *([client_row] if client_row else [])]
        self._set_status(DocumentStatus.SUMMARISING)

        outcomes = await asyncio.gather(
            *(
                self._thread(
                    rows[t],
                    ThreadSummaryRequest(
                        client_id=inputs.client_id,
                        thread_id=t,
                        service_tier=service_tier(deadline),
                        deadline=deadline,
                    ),
                )
                for t in rows
            ),
            return_exceptions=True,
        )
        failed = [
            f"{p.section_key}: {p.error or r}"
            for p, r in zip(rows.values(), outcomes, strict=True)
            if isinstance(r, BaseException)
        ]
        if failed:
            self._set_status(DocumentStatus.FAILED)
            raise ApplicationError(
                f"{len(failed)} of {len(rows)} threads failed: " + "; ".join(failed),
                type="SummariesFailed",
                non_retryable=True,
            )
        threads = [r for r in outcomes if isinstance(r, ThreadSummaryResult)]

        client: ClientSummaryResult | None = None
        if client_row is not None:
            client = await self._client(
                client_row,
                ClientSummaryRequest(
                    client_id=inputs.client_id,
                    client_version=inputs.client_version,
                    service_tier=service_tier(deadline),
                    deadline=deadline,
                ),
            )
        self._set_status(DocumentStatus.COMPLETED)
        return SummaryResult(
            client_id=inputs.client_id, client_version=inputs.client_version, threads=threads, client=client
        )

    async def _thread(self, progress: SectionProgress, request: ThreadSummaryRequest) -> ThreadSummaryResult:
        return await _tracked(progress, SummaryActivities.summarize_thread, request)

    async def _client(self, progress: SectionProgress, request: ClientSummaryRequest) -> ClientSummaryResult:
        try:
            return await _tracked(progress, SummaryActivities.summarize_client, request)
        except ActivityError:
            self._set_status(DocumentStatus.FAILED)
            raise


async def _tracked(progress: SectionProgress, activity_method: Any, request: Any) -> Any:
    """One summary activity, its outcome mirrored into its progress row; refused by the
    provider's rate limit, it shows as waiting, sleeps on a durable timer and runs again."""
    while True:
        progress.status = SectionStatus.RUNNING
        try:
            result = await workflow.execute_activity_method(
                activity_method,
                request,
                start_to_close_timeout=SECTION_START_TO_CLOSE,
                heartbeat_timeout=SECTION_HEARTBEAT_TIMEOUT,
                retry_policy=SECTION_RETRY,
            )
        except ActivityError as err:
            progress.error = failure_message(err)
            if (delay := rate_limit_wait(err)) is not None and workflow.patched(RATE_LIMIT_WAIT_PATCH):
                progress.status = SectionStatus.WAITING
                await workflow.sleep(delay)
                continue
            progress.status = SectionStatus.FAILED
            raise
        break
    _done(progress, result)
    return result
