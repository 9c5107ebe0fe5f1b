"""The worker: connect to Temporal, register every workflow and activity, run until stopped.

As in the Temporal samples, this file is the registration. The workflows are the registry's
(workflows/kinds.py); the activities are listed in ``activities``. `wavelaunch worker` runs
``run`` (``python worker.py`` is the same command), and the demo, the tests and the benchmarks
build their in-process workers with ``build_worker``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

import stack
from activities import crm_notify
from activities.bulk import BulkActivities
from activities.crm_notify import NotifyActivities
from activities.deliverable import DeliverableActivities
from activities.dependencies import PlanDependencies
from activities.plan import PlanActivities
from activities.section_generation import SectionActivities
from activities.summary import SummaryActivities
from domain.queues import Lane
from service.settings import Settings
from service.wiring import (
    LLMConfig,
    Workers,
    close_dependencies,
    connect_temporal,
    ensure_search_attributes,
    plan_dependencies,
    until_signal,
    worker_runtime,
)
from workflows.kinds import WORKFLOWS


def activities(deps: PlanDependencies) -> list[Callable[..., Any]]:
    """Every activity a worker serves, bound to its dependencies."""
    plan = PlanActivities(deps)
    sections = SectionActivities(deps)
    deliverable = DeliverableActivities(deps)
    summary = SummaryActivities(deps)
    bulk = BulkActivities(deps)
    notify = NotifyActivities(deps.pool, deps.crm)
    return [
        plan.prepare_plan,
        sections.generate_section,
        sections.generate_section_group,
        plan.assemble_document,
        deliverable.prepare_deliverable,
        deliverable.assemble_deliverable,
        summary.prepare_summary,
        summary.summarize_thread,
        summary.summarize_client,
        bulk.prepare_bulk,
        bulk.prepare_sections_batch,
        bulk.submit_batch,
        bulk.poll_batch,
        bulk.cancel_batch,
        bulk.collect_batch,
        bulk.collect_batch_sections,
        bulk.bulk_fallback,
        notify.document_failed,
    ]


def build_worker(client: Client, settings: Settings, deps: PlanDependencies) -> Workers:
    """The process's workers: every workflow and activity on the interactive queue, and on the
    background queue with activity slots of its own (domain/queues.py). Use as ``async with``."""
    concurrency = settings.worker_max_concurrent_activities
    background = settings.worker_max_concurrent_background_activities
    if deps.llm.structured_output == "json_object":
        # The local llama.cpp server answers one request at a time. More sections in flight only
        # queue inside it, where the wait counts against the call's timeout (and an abandoned
        # call keeps the server busy); one at a time, each timeout covers just its own answer.
        concurrency, background = 1, min(background, 1)
    methods = activities(deps)
    queues = [(settings.queue_for(Lane.INTERACTIVE), concurrency)]
    if settings.queue_for(Lane.BACKGROUND) == queues[0][0]:
        # Both lanes configured on one queue: one worker with all the slots (no fairness).
        queues = [(queues[0][0], concurrency + background)]
    elif background:
        queues.append((settings.queue_for(Lane.BACKGROUND), background))
    return Workers(
        [
            Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=methods, max_concurrent_activities=slots)
            for queue, slots in queues
        ]
    )


async def run(settings: Settings, *, ready: Callable[[Workers], None] | None = None) -> None:
    """Connect (bringing up the embedded parts not configured elsewhere), register, and serve
    until SIGINT or SIGTERM; ``ready`` is told the workers before they start polling."""
    endpoints = await stack.up(settings, with_llm=True)
    assert endpoints.llm is not None
    client = await connect_temporal(settings, endpoints.temporal_address, runtime=worker_runtime(settings))
    await ensure_search_attributes(client, settings.temporal_namespace)
    deps = await plan_dependencies(settings, endpoints.database_url, LLMConfig.from_endpoint(endpoints.llm))
    try:
        workers = build_worker(client, settings, deps)
        if ready is not None:
            ready(workers)
        # The CRM outbox is sent from here too, so documents are announced with no API running.
        async with workers, crm_notify.sending(deps.pool, deps.crm):
            await until_signal()
    finally:
        await close_dependencies(deps)


if __name__ == "__main__":
    # `python worker.py` is `wavelaunch worker` (its log lines, its one-line errors), run as its
    # own process so this registration imports nothing above it.
    os.execv(sys.executable, [sys.executable, "-m", "wavelaunch", "worker", *sys.argv[1:]])
