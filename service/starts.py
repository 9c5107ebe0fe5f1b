"""Starting and watching document workflows (any kind of workflows/kinds.py): the checks made
before anything starts, the one start function, progress, `retry`. What the CLI, the web app, the
outbox sender and starter.py share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, overload

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from contracts.models import (
    BulkRequest,
    BulkResult,
    DeliverableRequest,
    DeliverableResult,
    PlanRequest,
    PlanResult,
    SummaryRequest,
    SummaryResult,
)
from domain.catalogue import deliverables
from domain.catalogue.plan import resolve_sections
from domain.sections import DocumentKind
from service.settings import Settings
from storage import clients, messages
from storage.db import DB
from workflows import kinds
from workflows import search_attributes as sa
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.ids import plan_workflow_id
from workflows.summary import SummaryWorkflow

log = logging.getLogger(__name__)


async def check_request(pool: asyncpg.Pool, request: PlanRequest) -> None:
    """Refuse an unknown client or section before anything starts (and before any LLM call)."""
    await clients.get(pool, request.client_id, request.client_version)
    resolve_sections(request.level, request.sections)


def check_month(month: int) -> None:
    """Refuse a month outside M1–M8 (ValueError with a clear message) before anything starts."""
    deliverables.month(month)


async def check_deliverable(pool: DB, request: DeliverableRequest) -> None:
    """Refuse a bad month or an unknown client before anything starts (and before any LLM call)."""
    check_month(request.month)
    await clients.get(pool, request.client_id, request.client_version)


async def check_summary(pool: asyncpg.Pool, request: SummaryRequest) -> list[str]:
    """Refuse an unknown client or thread before anything starts; the threads the run covers."""
    await clients.get(pool, request.client_id)
    return await messages.resolve_threads(pool, request.client_id, request.thread_ids)


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


@overload
async def start(
    client: Client, settings: Settings, request: PlanRequest, *, announce_version: int | None = None
) -> WorkflowHandle[BusinessPlanWorkflow, PlanResult]: ...
@overload
async def start(
    client: Client, settings: Settings, request: DeliverableRequest, *, announce_version: int | None = None
) -> WorkflowHandle[DeliverableWorkflow, DeliverableResult]: ...
@overload
async def start(
    client: Client, settings: Settings, request: SummaryRequest
) -> WorkflowHandle[SummaryWorkflow, SummaryResult]: ...
@overload
async def start(
    client: Client, settings: Settings, request: BulkRequest, *, workflow_id: str | None = None
) -> WorkflowHandle[BulkRegenerationWorkflow, BulkResult]: ...
async def start(
    client: Client,
    settings: Settings,
    request: BaseModel,
    *,
    announce_version: int | None = None,
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start the document ``request`` asks for under its deterministic id (``plan-<clientId>``,
    ``deliverable-<clientId>-m<N>``, ``summary-<clientId>``, ``bulk-<hash>``; or ``workflow_id``),
    or attach to it if it is already running.

    USE_EXISTING makes a repeated request (a second click, a redelivered event) join the running
    workflow instead of starting a second generation (or submitting a second batch); a finished
    one may run again, and its finished sections are then reused from storage at no token cost.
    ``announce_version`` (signal-with-start, plans and deliverables) tells a running workflow
    that a newer client snapshot exists, so it folds the update in after its current round
    rather than losing it.
    """
    kind = kinds.for_request(request)
    how = kind.start
    if how is None:
        raise TypeError(f"a {kind.name} workflow is started by another workflow, never from outside")
    signal: dict[str, Any] = {}
    if announce_version is not None:
        if not kind.follows_updates:
            raise TypeError(f"a {kind.name} workflow takes no client update")
        signal = {"start_signal": "client_updated", "start_signal_args": [announce_version]}
    if how.poll_seconds_field and how.poll_seconds_field not in request.model_fields_set:
        request = request.model_copy(update={how.poll_seconds_field: settings.bulk_poll_seconds})
    return await client.start_workflow(
        kind.workflow.run,
        request,
        id=workflow_id or how.workflow_id(request),
        task_queue=settings.queue_for(how.lane(request)),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [*how.search_attributes(request), SearchAttributePair(sa.STATUS, kinds.QUEUED)]
        ),
        memo=how.memo(request),
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
    query: Any = kinds.PLAN.progress,
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
    kind = kinds.by_workflow_type(described.workflow_type)
    if kind is None or not kind.retryable:
        raise NothingToRetry(f"{workflow_id} is a {described.workflow_type}, which `retry` does not know")
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [request] = await client.data_converter.decode(started.input.payloads, [kind.request])
    log.info("retrying %s (%s) with its original request", workflow_id, status.name.lower() if status else "closed")
    return await start(client, settings, request)
