"""SummaryWorkflow on the time-skipping server, activities replaced at the boundary."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.models import (
    ClientSummaryRequest,
    ClientSummaryResult,
    SectionStatus,
    SummaryInputs,
    SummaryRequest,
    ThreadSummaryRequest,
    ThreadSummaryResult,
)
from workflows.summary import SummaryWorkflow

THREADS = {"c1": ["t1", "t2", "t3"]}


class FakeSummaryActivities:
    def __init__(self, fail_threads: set[str] | None = None, together: int = 0) -> None:
        self.fail_threads = fail_threads or set()
        # Threads that must all be running at once before any may finish (proves the fan-out):
        # run one after another, they would wait forever and the test would fail.
        self.together = together
        self._started = 0
        self._all_started = asyncio.Event()
        # (event, what) in the order things happened.
        self.events: list[tuple[str, str]] = []
        self.client_requests: list[ClientSummaryRequest] = []

    @activity.defn(name="prepare_summary")
    async def prepare_summary(self, request: SummaryRequest) -> SummaryInputs:
        known = THREADS.get(request.client_id)
        if known is None:
            raise ApplicationError(f"client {request.client_id!r} not found", type="UnknownClient", non_retryable=True)
        wanted = request.thread_ids if request.thread_ids is not None else known
        if missing := [t for t in wanted if t not in known]:
            raise ApplicationError(f"no thread {missing}", type="UnknownThread", non_retryable=True)
        return SummaryInputs(client_id=request.client_id, client_version=3, thread_ids=wanted)

    @activity.defn(name="summarize_thread")
    async def summarize_thread(self, request: ThreadSummaryRequest) -> ThreadSummaryResult:
        self.events.append(("start", request.thread_id))
        self._started += 1
        if self._started >= self.together:
            self._all_started.set()
        await asyncio.wait_for(self._all_started.wait(), timeout=30)
        if request.thread_id in self.fail_threads:
            raise ApplicationError("invalid JSON 3 times", type="InvalidModelOutput", non_retryable=True)
        self.events.append(("end", request.thread_id))
        return ThreadSummaryResult(
            thread_id=request.thread_id,
            summary_id=len(self.events),
            version=1,
            through_seq=4,
            new_messages=4,
            model="economy",
            tier="economy",
            prompt_tokens=100,
            completion_tokens=50,
            cost=Decimal("0.0001"),
            baseline_tokens=600,
            llm_calls=1,
        )

    @activity.defn(name="summarize_client")
    async def summarize_client(self, request: ClientSummaryRequest) -> ClientSummaryResult:
        self.events.append(("client", request.client_id))
        self.client_requests.append(request)
        return ClientSummaryResult(
            summary_id=1,
            version=1,
            model="economy",
            tier="economy",
            prompt_tokens=80,
            completion_tokens=70,
            llm_calls=1,
        )

    def all(self) -> list:
        return [self.prepare_summary, self.summarize_thread, self.summarize_client]


async def run_summary(env: WorkflowEnvironment, fakes: FakeSummaryActivities, request: SummaryRequest):
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=queue, workflows=[SummaryWorkflow], activities=fakes.all()):
        handle = await env.client.start_workflow(
            SummaryWorkflow.run, request, id=f"summary-{request.client_id}-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        try:
            result = await handle.result()
        finally:
            progress = await handle.query(SummaryWorkflow.progress)
        return progress, result


async def test_threads_fan_out_concurrently_then_the_client_summary(env):
    fakes = FakeSummaryActivities(together=3)
    progress, result = await run_summary(env, fakes, SummaryRequest(client_id="c1"))

    # Every thread started before any finished (concurrent), and the client summary came last.
    assert [e for e, _ in fakes.events[:3]] == ["start"] * 3
    assert fakes.events[-1] == ("client", "c1")
    assert [t.thread_id for t in result.threads] == ["t1", "t2", "t3"]
    assert fakes.client_requests == [ClientSummaryRequest(client_id="c1", client_version=3)]
    assert result.total_tokens == 3 * 150 + 150 and result.llm_calls == 4
    assert progress.status == "completed"
    assert [(s.section_key, s.status) for s in progress.sections] == [
        ("thread:t1", SectionStatus.DONE),
        ("thread:t2", SectionStatus.DONE),
        ("thread:t3", SectionStatus.DONE),
        ("client_summary", SectionStatus.DONE),
    ]
    assert progress.tokens == result.total_tokens


async def test_named_threads_only_and_no_client_summary(env):
    fakes = FakeSummaryActivities()
    progress, result = await run_summary(
        env, fakes, SummaryRequest(client_id="c1", thread_ids=["t2"], include_client_summary=False)
    )
    assert [t.thread_id for t in result.threads] == ["t2"] and result.client is None
    assert fakes.client_requests == []
    assert [s.section_key for s in progress.sections] == ["thread:t2"]


async def test_a_failed_thread_fails_the_run_after_the_others_and_skips_the_client_summary(env):
    fakes = FakeSummaryActivities(fail_threads={"t2"})
    with pytest.raises(WorkflowFailureError) as info:
        await run_summary(env, fakes, SummaryRequest(client_id="c1"))
    assert "1 of 3 threads failed: thread:t2: InvalidModelOutput: invalid JSON 3 times" in str(info.value.cause)
    assert {t for e, t in fakes.events if e == "end"} == {"t1", "t3"}
    assert fakes.client_requests == []


async def test_an_unknown_client_fails_before_any_summary(env):
    fakes = FakeSummaryActivities()
    with pytest.raises(WorkflowFailureError) as info:
        await run_summary(env, fakes, SummaryRequest(client_id="nobody"))
    assert info.value.cause.cause.type == "UnknownClient"
    assert fakes.events == []
