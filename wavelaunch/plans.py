"""Starting and watching business-plan and deliverable workflows: what the CLI, starter.py and
the API share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from activities.deliverable import month_level
from domain import deliverables
from domain.sections import DocumentKind, resolve_sections
from storage import clients
from wavelaunch.settings import Settings
from workflows import search_attributes as sa
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.models import DeliverableRequest, DeliverableResult, PlanRequest, PlanResult
from workflows.shared import plan_workflow_id


async def check_request(pool: asyncpg.Pool, request: PlanRequest) -> None:
    """Refuse an unknown client or section before anything starts (and before any LLM call)."""
    await clients.get(pool, request.client_id, request.client_version)
    resolve_sections(request.level, request.sections)


async def start_plan(
    client: Client, settings: Settings, request: PlanRequest, *, announce_version: int | None = None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]:
    """Start ``plan-<clientId>``, or attach to it if it is already running.

    USE_EXISTING makes a repeated request (a second click, a redelivered event) join the running
    plan instead of starting a second generation; a finished plan may be generated again, and
    its finished sections are then reused from storage at no token cost. ``announce_version``
    (signal-with-start) tells a running plan that a newer client snapshot exists, so it folds
    the update in after its current round rather than losing it.
    """
    signal: dict[str, Any] = {}
    if announce_version is not None:
        signal = {"start_signal": "client_updated", "start_signal_args": [announce_version]}
    return await client.start_workflow(
        BusinessPlanWorkflow.run,
        request,
        id=plan_workflow_id(request.client_id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CLIENT_ID, request.client_id),
                SearchAttributePair(sa.DOCUMENT_KIND, DocumentKind.BUSINESS_PLAN.value),
                SearchAttributePair(sa.LEVEL, request.level.value),
                SearchAttributePair(sa.STATUS, "queued"),
            ]
        ),
        memo={"client_id": request.client_id, "level": request.level.value},
        **signal,
    )


def check_month(month: int) -> None:
    """Refuse a month outside M1–M8 (ValueError with a clear message) before anything starts."""
    deliverables.month(month)


async def check_deliverable(pool: asyncpg.Pool, request: DeliverableRequest) -> None:
    """Refuse a bad month or an unknown client before anything starts (and before any LLM call)."""
    check_month(request.month)
    await clients.get(pool, request.client_id, request.client_version)


async def start_deliverable(
    client: Client, settings: Settings, request: DeliverableRequest
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]:
    """Start ``deliverable-<clientId>-m<N>``, or attach to it if it is already running (as plans)."""
    return await client.start_workflow(
        DeliverableWorkflow.run,
        request,
        id=deliverables.workflow_id(request.client_id, request.month),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CLIENT_ID, request.client_id),
                SearchAttributePair(sa.DOCUMENT_KIND, DocumentKind.DELIVERABLE.value),
                SearchAttributePair(sa.LEVEL, month_level(request.month)),
                SearchAttributePair(sa.STATUS, "queued"),
            ]
        ),
        memo={"client_id": request.client_id, "month": request.month},
    )


async def resume_paused(client: Client) -> list[str]:
    """Signal every running workflow waiting on a paused budget; their ids. A workflow resumed
    while its budget is still at the limit is refused again and waits again."""
    from workflows.fanout import BUDGET_RESUMED

    query = f'{sa.STATUS.name} = "paused" AND ExecutionStatus = "Running"'
    signalled = []
    async for execution in client.list_workflows(query):
        await client.get_workflow_handle(execution.id, run_id=execution.run_id).signal(BUDGET_RESUMED)
        signalled.append(execution.id)
    return signalled


async def watch(
    handle: WorkflowHandle[Any, Any],
    on_progress: Callable[[Any], None],
    *,
    every: float = 0.5,
    query: Any = BusinessPlanWorkflow.progress,
) -> Any:
    """Wait for the result, reporting progress from the workflow's query as it changes
    (``query``: the workflow's progress query, the plan's by default)."""
    result_task = asyncio.ensure_future(handle.result())
    last: str | None = None
    try:
        while not result_task.done():
            try:
                progress = await handle.query(query)
            except RPCError:
                progress = None  # no worker has picked the workflow up yet
            if progress is not None and (dump := progress.model_dump_json()) != last:
                last = dump
                on_progress(progress)
            await asyncio.wait({result_task}, timeout=every)
        result = result_task.result()
    finally:
        if not result_task.done():
            result_task.cancel()
    try:
        on_progress(await handle.query(query))
    except RPCError:
        pass
    return result
