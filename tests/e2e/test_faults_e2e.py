"""Fault injection on the real parts: embedded Postgres, the Temporal dev server, the stub over
HTTP, workers in process or as processes. Each scenario checks that nothing bought is lost or
bought twice, and records its figures for the "Fault injection" table (tests/faults.py):

    uv run pytest tests/e2e/test_faults_e2e.py -q

Waits are on conditions with deadlines, never fixed sleeps, so a loaded machine only makes a
scenario slower.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.models import PlanRequest
from crm.app import create_app
from crm.intake import Intake
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from service import starts
from service.settings import Settings
from service.wiring import close_dependencies, plan_dependencies
from stack import postgres, temporal
from storage import db
from stubs.llm_server import StubServer
from tests.e2e.conftest import closed_runs, finished, make_settings, worker_env
from tests.e2e.test_business_plan_e2e import new_client
from tests.e2e.test_webhooks_e2e import SECRET, delivery, record
from tests.e2e.test_worker_crash_e2e import start_worker
from tests.faults import ROWS, FaultRow
from worker import build_worker
from workflows.shared import SECTION_RETRY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVERY = [s.key for s in resolve_sections(Level.COMPLETE)]
BATCH = "section_batch"  # the stub's name for a multi-section call


async def until(condition: Callable[[], Any], within: float, what: str) -> None:
    """Poll ``condition`` (sync or async) until true; fail naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {within:.0f} s for {what}")
        await asyncio.sleep(0.1)


def in_flight(stub: StubServer) -> list[dict]:
    return [r for r in stub.requests() if r["status"] is None]


def answered(stub: StubServer) -> list[dict]:
    return [r for r in stub.requests() if r["status"] == 200]


def billed_sections(stub: StubServer) -> Counter[str]:
    """Section answers the stub billed, a batch counted once per member."""
    return Counter(k for r in answered(stub) for k in (r["members"] or [r["section"]]))


async def check_ledger(pool: asyncpg.Pool, client_id: str, stub: StubServer, *, received: Counter[str]) -> dict:
    """The ledger against the stub: one billed row per answer received, its tokens the stub's,
    each section stored once; returns the figures for the table."""
    rows = await pool.fetch(
        """SELECT section_key, prompt_tokens, completion_tokens, success, call_id FROM usage_ledger
           WHERE client_id = $1 AND total_tokens > 0 AND operation <> 'embed'""",
        client_id,
    )
    per_section = Counter(r["section_key"] for r in rows)
    assert per_section == received, f"ledger {dict(per_section)} != answers received {dict(received)}"
    assert len({r["call_id"] for r in rows}) == len(rows)  # none written twice
    stored = await pool.fetch(
        "SELECT section_key, count(*) AS n FROM sections WHERE client_id = $1 GROUP BY 1", client_id
    )
    assert {r["section_key"]: r["n"] for r in stored} == dict.fromkeys(EVERY, 1)
    successes = Counter(r["section_key"] for r in rows if r["success"])
    return {"rows": len(rows), "bought_twice": sum(1 for n in successes.values() if n > 1)}


def record_row(scenario: str, stub: StubServer, figures: dict, seconds: float, *, lost: int = 0, note: str) -> None:
    billed = sum(billed_sections(stub).values())
    ROWS.append(FaultRow(scenario, billed, figures["rows"], figures["bought_twice"], lost, seconds, note))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A directory for a server of this test's own. Not pytest's tmp_path: pytest deletes old
    base temp dirs of the same user, and another run on the machine may do so mid-test."""
    path = Path(tempfile.mkdtemp(prefix="wavelaunch-faults-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- Postgres ------------------------------------------------------------------------------------
async def test_postgres_killed_mid_plan_loses_no_answer(temporal_env, stub, llm_config, own_dir: Path):
    """Postgres crashes while seven calls are in flight and stays down while their answers
    arrive: every answer and its usage row is written once it is back, nothing is bought again."""
    pgdata = own_dir / "pgdata"
    url = (await postgres.start(pgdata)).database_url
    settings = make_settings(state_dir=own_dir / "state")
    deps = await plan_dependencies(settings, url, llm_config)
    try:
        setup = await db.connect(url)
        client_id = await new_client(setup)
        await setup.close()
        stub.add_faults([{"kind": "delay", "seconds": 2, "times": 100}])
        began = time.monotonic()
        async with build_worker(temporal_env.client, settings, deps):
            handle = await starts.start(
                temporal_env.client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE)
            )
            await until(lambda: len(in_flight(stub)) >= 3, 60, "calls in flight")
            await asyncio.to_thread(postgres.kill, pgdata)
            during = {id(r) for r in in_flight(stub)}
            # Down until every call in flight has been answered: those answers arrive meanwhile.
            await until(lambda: not in_flight(stub), 60, "the calls in flight to be answered")
            answered_while_down = len(during)
            assert deps.spool.pending() > 0, "no bought answer was waiting for Postgres"
            await postgres.start(pgdata)
            await finished(handle, 180)
        seconds = time.monotonic() - began
        pool = await db.connect(url)
        try:
            received = billed_sections(stub)
            assert set(received.values()) == {1}, f"a section was bought twice: {received}"
            figures = await check_ledger(pool, client_id, stub, received=received)
        finally:
            await pool.close()
        assert deps.spool.pending() == 0
    finally:
        await close_dependencies(deps)
        await asyncio.to_thread(postgres.stop, pgdata)
    record_row(
        "Postgres killed mid-plan, restarted after the answers in flight arrived",
        stub,
        figures,
        seconds,
        note=f"{answered_while_down} calls answered while Postgres was down",
    )


# -- Temporal --------------------------------------------------------------------------------------
async def test_temporal_killed_mid_plan(pool, stub, llm_config, database_url, own_dir: Path):
    """The dev server is killed (SIGKILL) while calls are in flight and restarted on its state
    file: the plan completes, nothing is bought twice."""
    server_settings = Settings(state_dir=own_dir / "temporal", temporal_port=free_port(), temporal_ui_port=free_port())
    server = await temporal.start(server_settings)
    settings = make_settings(state_dir=own_dir / "state")
    deps = await plan_dependencies(settings, database_url, llm_config)
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        client_id = await new_client(pool)
        stub.add_faults([{"kind": "delay", "seconds": 2, "times": 100}])
        began = time.monotonic()
        async with build_worker(client, settings, deps):
            handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
            await until(lambda: len(in_flight(stub)) >= 3, 60, "calls in flight")
            os.kill(server.process.pid, signal.SIGKILL)
            await until(lambda: not in_flight(stub), 60, "the calls in flight to be answered")
            server = await temporal.start(server_settings)
            await finished(handle, 180)
        seconds = time.monotonic() - began
        received = billed_sections(stub)
        assert set(received.values()) == {1}, f"a section was bought twice: {received}"
        figures = await check_ledger(pool, client_id, stub, received=received)
    finally:
        await close_dependencies(deps)
        await asyncio.to_thread(temporal.stop, server.process.pid, server.process.create_time)
    record_row(
        "Temporal dev server killed (SIGKILL) mid-plan, restarted",
        stub,
        figures,
        seconds,
        note="calls in flight answered while the server was down",
    )


# -- the LLM endpoint --------------------------------------------------------------------------------
async def test_a_429_storm(pool, client, settings, worker, stub):
    """42 rate limits in a row (6 for every call, each with retry-after): every section is
    written once, each 429 a failed row with no tokens."""
    calls = [k for k in EVERY if k not in ("operations_plan", "team_structure")] + [BATCH]
    stub.add_faults(
        [{"kind": "status", "status": 429, "retry_after": 0.2, "times": 6, "match": {"section": k}} for k in calls]
    )
    client_id = await new_client(pool)
    began = time.monotonic()
    handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    await finished(handle, 180)
    seconds = time.monotonic() - began
    limited = [r for r in stub.requests() if r["status"] == 429]
    assert len(limited) == 6 * len(calls)
    received = billed_sections(stub)
    assert set(received.values()) == {1}
    figures = await check_ledger(pool, client_id, stub, received=received)
    failed = await pool.fetchval(
        "SELECT count(*) FROM usage_ledger WHERE client_id = $1 AND NOT success AND total_tokens = 0", client_id
    )
    # A batch's 429 is a failed row for each of its members.
    assert failed == 6 * (len(calls) + 1)
    record_row(
        "429 storm: 42 in a row (6 per call, retry-after 0.2 s)",
        stub,
        figures,
        seconds,
        note=f"each 429 a failed row with no tokens ({failed}: one per batch member)",
    )


async def test_a_hung_call_is_abandoned_and_retried_on_schedule(pool, client, database_url, stub, llm_config, tmp_path):
    """One call hangs far beyond its timeout: it is abandoned when the timeout ends and retried
    after the retry policy's first interval, long before the hung call would have returned."""
    settings = make_settings(
        state_dir=tmp_path, llm_timeout_seconds=3.0, llm_timeout_base_seconds=3.0, llm_timeout_per_token_seconds=0.0
    )
    deps = await plan_dependencies(settings, database_url, llm_config)
    hang = 90.0
    stub.add_faults([{"kind": "delay", "seconds": hang, "times": 1, "match": {"section": "executive_summary"}}])
    client_id = await new_client(pool)
    try:
        began = time.monotonic()
        async with build_worker(client, settings, deps):
            handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
            await finished(handle, 120)
        seconds = time.monotonic() - began
    finally:
        await close_dependencies(deps)
    assert seconds < hang, "the hung call was waited out"
    rows = await pool.fetch(
        """SELECT success, error_message, created_at FROM usage_ledger
           WHERE client_id = $1 AND section_key = 'executive_summary' ORDER BY id""",
        client_id,
    )
    assert [r["success"] for r in rows] == [False, True]
    assert "no answer" in rows[0]["error_message"] and "within 3 s" in rows[0]["error_message"]
    # Retried on schedule: not before the retry policy's first interval.
    gap = (rows[1]["created_at"] - rows[0]["created_at"]).total_seconds()
    assert gap >= SECTION_RETRY.initial_interval.total_seconds() * 0.9, gap
    requests = [r for r in stub.requests() if r["section"] == "executive_summary"]
    assert len(requests) == 2 and requests[0]["fault"]
    received = billed_sections(stub)
    figures = await check_ledger(pool, client_id, stub, received=received)
    record_row(
        "a hung call (90 s delay, call timeout 3 s)",
        stub,
        figures,
        seconds,
        lost=1,
        note="abandoned after 3 s, retried after the first retry interval",
    )


# -- a worker killed during a multi-section call --------------------------------------------------
async def test_worker_killed_during_a_multi_section_call(pool, temporal_env, settings, stub, database_url, tmp_path):
    """kill -9 the worker while the batch call is in flight: the batch is written by the next
    worker, every section stored once, one billed row per answer received."""
    env = worker_env(temporal_env, settings, stub, database_url, WAVELAUNCH_STATE_DIR=str(tmp_path / "state"))
    stub.add_faults([{"kind": "delay", "seconds": 60, "times": 1, "match": {"section": BATCH}}])
    client_id = await new_client(pool)
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    began = time.monotonic()
    handle = await starts.start(temporal_env.client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    try:

        async def only_the_batch_in_flight() -> bool:
            assert first.poll() is None, log.read_text()
            flying = in_flight(stub)
            if not (len(flying) == 1 and flying[0]["section"] == BATCH and len(answered(stub)) == len(EVERY) - 2):
                return False
            # ...and the answers the stub sent are in the worker's hands (recorded), not still on the
            # wire: an answer killed in transit is bought again (the hung-call scenario's case).
            recorded = await pool.fetchval(
                "SELECT count(*) FROM usage_ledger WHERE client_id = $1 AND success AND completion_tokens > 0",
                client_id,
            )
            return recorded >= len(EVERY) - 2

        await until(only_the_batch_in_flight, 90, "the batch call alone in flight")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(env, log)
        try:
            result = await finished(handle, 150)
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    seconds = time.monotonic() - began
    assert sorted(s.section_key for s in result.sections) == sorted(EVERY)
    batches = [r for r in stub.requests() if r["section"] == BATCH]
    assert len(batches) == 2 and batches[0]["status"] is None  # the first never reached a worker
    received = billed_sections(stub)
    assert set(received.values()) == {1}
    figures = await check_ledger(pool, client_id, stub, received=received)
    record_row(
        "worker killed (SIGKILL) during a multi-section call",
        stub,
        figures,
        seconds,
        lost=len(batches[0]["members"]),
        note="the cut-off call's 2 sections written again by the next worker (heartbeat timeout 20 s)",
    )


# -- webhooks ---------------------------------------------------------------------------------------
async def test_100_concurrent_copies_of_one_delivery(pool, client, settings, worker, stub):
    """The same signed delivery 100 times at once: one stored delivery, one start, one plan run;
    every copy answered with the same 202."""
    intake = Intake(pool, client, settings)
    app = create_app(intake, secret=SECRET, max_age_seconds=300)
    data = record()
    body, headers = delivery("client.created", data)
    workflow_id = f"plan-{data['id']}"
    began = time.monotonic()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm.test") as http,
    ):
        answers = await asyncio.gather(*(http.post("/webhooks/crm", content=body, headers=headers) for _ in range(100)))
        await intake.starts.idle()
        await finished(client.get_workflow_handle(workflow_id), 120)
    seconds = time.monotonic() - began
    assert Counter(a.status_code for a in answers) == {202: 100}
    assert len({a.text for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE workflow_id = $1", workflow_id) == 1
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE id = $1", headers["X-Webhook-ID"]) == 1
    runs = await closed_runs(client, workflow_id)
    assert [r.status for r in runs] == [WorkflowExecutionStatus.COMPLETED]
    received = billed_sections(stub)
    assert set(received.values()) == {1}
    figures = await check_ledger(pool, data["id"], stub, received=received)
    record_row(
        "100 concurrent copies of one signed delivery",
        stub,
        figures,
        seconds,
        note="100 × 202, 1 delivery stored, 1 start, 1 plan run",
    )
