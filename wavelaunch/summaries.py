"""Starting summary workflows and feeding them messages: what the CLI, the API and the benchmark share."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from domain.queues import lane_for
from domain.sections import DocumentKind
from domain.summaries import ThreadInput, workflow_id
from storage import clients, messages
from storage.messages import AppendResult
from wavelaunch.settings import Settings
from workflows import search_attributes as sa
from workflows.models import SummaryRequest, SummaryResult
from workflows.summary import SummaryWorkflow


def summary_level(request: SummaryRequest) -> str:
    """How a summary run is labelled in the WavelaunchLevel search attribute."""
    return "threads+client" if request.include_client_summary else "threads"


async def append_threads(pool: asyncpg.Pool, client_id: str, threads: Sequence[ThreadInput]) -> list[AppendResult]:
    """Append each thread's messages to the client's stored threads (idempotent by message id).
    Refuses an unknown client (UnknownClient) before storing anything."""
    await clients.get(pool, client_id)
    return [
        await messages.append_messages(pool, client_id, t.thread_id, t.messages, subject=t.subject) for t in threads
    ]


async def check_summary(pool: asyncpg.Pool, request: SummaryRequest) -> list[str]:
    """Refuse an unknown client or thread before anything starts; the threads the run covers."""
    await clients.get(pool, request.client_id)
    return await messages.resolve_threads(pool, request.client_id, request.thread_ids)


async def start_summary(
    client: Client, settings: Settings, request: SummaryRequest
) -> WorkflowHandle[SummaryWorkflow, SummaryResult]:
    """Start ``summary-<clientId>``, or attach to it if it is already running (as plans): a
    repeated request never summarises twice, and a finished run may run again, paying only for
    messages that arrived since."""
    return await client.start_workflow(
        SummaryWorkflow.run,
        request,
        id=workflow_id(request.client_id),
        task_queue=settings.queue_for(lane_for(deadline=request.deadline, within=request.within)),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CLIENT_ID, request.client_id),
                SearchAttributePair(sa.DOCUMENT_KIND, DocumentKind.SUMMARY.value),
                SearchAttributePair(sa.LEVEL, summary_level(request)),
                SearchAttributePair(sa.STATUS, "queued"),
            ]
        ),
        memo={"client_id": request.client_id, "threads": request.thread_ids or "all"},
    )
