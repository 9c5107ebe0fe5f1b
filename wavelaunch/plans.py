"""Starting and watching business-plan and deliverable workflows: what the CLI, starter.py and
the API share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from activities.deliverable import month_level
from domain.catalogue import deliverables
from domain.catalogue.plan import resolve_sections
from domain.queues import Lane, lane_for
from domain.sections import DocumentKind
from storage import clients
from storage.db import DB
from wavelaunch.settings import Settings
from workflows import search_attributes as sa
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.models import BulkRequest, BulkResult, DeliverableRequest, DeliverableResult, PlanRequest, PlanResult
from workflows.shared import bulk_workflow_id, plan_workflow_id

log = logging.getLogger(__name__)


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
        task_queue=settings.queue_for(lane_for(deadline=request.deadline)),
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


async def check_deliverable(pool: DB, request: DeliverableRequest) -> None:
    """Refuse a bad month or an unknown client before anything starts (and before any LLM call)."""
    check_month(request.month)
    await clients.get(pool, request.client_id, request.client_version)


async def start_deliverable(
    client: Client, settings: Settings, request: DeliverableRequest, *, announce_version: int | None = None
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]:
    """Start ``deliverable-<clientId>-m<N>``, or attach to it if it is already running (as plans,
    ``announce_version`` included)."""
    signal: dict[str, Any] = {}
    if announce_version is not None:
        signal = {"start_signal": "client_updated", "start_signal_args": [announce_version]}
    if "batch_poll_seconds" not in request.model_fields_set:
        request = request.model_copy(update={"batch_poll_seconds": settings.bulk_poll_seconds})
    return await client.start_workflow(
        DeliverableWorkflow.run,
        request,
        id=deliverables.workflow_id(request.client_id, request.month),
        task_queue=settings.queue_for(lane_for(deadline=request.deadline, within=request.within)),
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
        **signal,
    )


async def announce_update(client: Client, client_id: str, version: int) -> list[str]:
    """Tell the client's running plan and deliverables that a newer snapshot exists; they fold it
    in after their current round. Starts nothing: a finished document picks the snapshot up when
    next requested. Returns the workflow ids signalled."""
    signalled = []
    try:
        await client.get_workflow_handle(plan_workflow_id(client_id)).signal(
            BusinessPlanWorkflow.client_updated, version
        )
        signalled.append(plan_workflow_id(client_id))
    except RPCError:
        pass  # no plan running
    query = (
        f"{sa.CLIENT_ID.name} = '{client_id}' AND {sa.DOCUMENT_KIND.name} = '{DocumentKind.DELIVERABLE.value}'"
        " AND ExecutionStatus = 'Running'"
    )
    async for execution in client.list_workflows(query):
        try:
            await client.get_workflow_handle(execution.id).signal(DeliverableWorkflow.client_updated, version)
            signalled.append(execution.id)
        except RPCError:
            pass  # finished between the listing and the signal
    return signalled


class UnknownClients(LookupError):
    """Some of the clients asked for are not in the service."""


async def check_bulk(pool: asyncpg.Pool, request: BulkRequest) -> None:
    """Refuse unknown clients (all of them named) or an empty selection before anything starts."""
    if request.client_ids is None:
        if not await clients.active_ids(pool):
            raise UnknownClients(
                "no ACTIVE clients to regenerate; import clients first (wavelaunch clients import FILE)"
            )
        return
    if not request.client_ids:
        raise UnknownClients("name at least one client (--client ID) or ask for --all")
    known = set(await clients.list_ids(pool))
    missing = sorted(set(request.client_ids) - known)
    if missing:
        raise UnknownClients(
            f"unknown client(s): {', '.join(missing)}; import them first (wavelaunch clients import FILE)"
        )


async def start_bulk(
    client: Client, settings: Settings, request: BulkRequest, *, workflow_id: str | None = None
) -> WorkflowHandle[BulkRegenerationWorkflow, BulkResult]:
    """Start ``bulk-<hash of the request>`` (or ``workflow_id``), or attach to it if it is running.

    USE_EXISTING: the same request while one runs joins it, so no second batch is submitted; a
    finished one may run again (e.g. after the next template change)."""
    return await client.start_workflow(
        BulkRegenerationWorkflow.run,
        request,
        id=workflow_id or bulk_workflow_id(request.client_ids, request.document_kind.value, request.level.value),
        task_queue=settings.queue_for(Lane.BACKGROUND),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.DOCUMENT_KIND, request.document_kind.value),
                SearchAttributePair(sa.LEVEL, request.level.value),
                SearchAttributePair(sa.STATUS, "queued"),
            ]
        ),
        memo={"clients": request.client_ids or "all", "level": request.level.value, "bulk": True},
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


class NothingToRetry(ValueError):
    pass


# Workflow type -> (its request model, how to start it again).
_RETRYABLE: dict[str, tuple[type[Any], Callable[..., Awaitable[WorkflowHandle[Any, Any]]]]] = {
    "BusinessPlanWorkflow": (PlanRequest, start_plan),
    "DeliverableWorkflow": (DeliverableRequest, start_deliverable),
}


async def retry(client: Client, settings: Settings, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """Start a failed (or cancelled, timed-out, terminated) document workflow again with its
    original request; a completed or running one is refused and nothing changes."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        raise NothingToRetry(f"no workflow {workflow_id!r}: {err.message}") from None
    status = described.status
    if status == WorkflowExecutionStatus.COMPLETED:
        raise NothingToRetry(f"{workflow_id} completed successfully; nothing to retry")
    if status == WorkflowExecutionStatus.RUNNING:
        raise NothingToRetry(f"{workflow_id} is still running; watch it in the Web UI or wait for it")
    if described.workflow_type not in _RETRYABLE:
        raise NothingToRetry(f"{workflow_id} is a {described.workflow_type}, which `retry` does not know")
    request_type, start = _RETRYABLE[described.workflow_type]
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [request] = await client.data_converter.decode(started.input.payloads, [request_type])
    log.info("retrying %s (%s) with its original request", workflow_id, status.name.lower())
    return await start(client, settings, request)
