"""kill -9 the worker mid-plan: the plan completes on a new worker, finished sections are
never requested again, and the in-flight ones are picked up within the heartbeat timeout."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from contracts.models import PlanRequest, SectionStatus
from domain.catalogue.plan import resolve_sections
from domain.sections import Level
from service import starts
from tests.e2e.conftest import requested_sections, worker_env
from tests.e2e.test_business_plan_e2e import new_client
from workflows.business_plan import BusinessPlanWorkflow
from workflows.shared import SECTION_HEARTBEAT_TIMEOUT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python worker.py`, the thin entry point operators run, as a separate process."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_killed_worker_resumes_without_paying_again(
    pool, temporal_env: WorkflowEnvironment, settings, stub, database_url, tmp_path
):
    env = worker_env(
        temporal_env,
        settings,
        stub,
        database_url,
        WAVELAUNCH_STATE_DIR=str(tmp_path / "state"),
        # Two sections at a time, so the plan runs in waves and some finish before the kill.
        WAVELAUNCH_WORKER_MAX_CONCURRENT_ACTIVITIES="2",
    )
    stub.add_faults([{"kind": "delay", "seconds": 3, "times": 100}])
    client_id = await new_client(pool)
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    handle = await starts.start(temporal_env.client, settings, PlanRequest(client_id=client_id, level=Level.COMPLETE))
    try:
        while True:
            progress = await handle.query(BusinessPlanWorkflow.progress)
            if progress and progress.count(SectionStatus.DONE) >= 2:
                break
            assert first.poll() is None, log.read_text()
            await asyncio.sleep(0.2)
        finished_before = {s.section_key for s in progress.sections if s.status == SectionStatus.DONE}
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()

        second = start_worker(env, log)
        try:
            result = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    resumed_in = time.monotonic() - killed_at

    every = [s.key for s in resolve_sections(Level.COMPLETE)]
    assert sorted(s.section_key for s in result.sections) == sorted(every)
    # A batch request (tokenopt.batching) counts once for each of its member sections.
    requested = Counter(requested_sections(stub))
    for key in finished_before:
        assert requested[key] == 1, f"{key} was requested again after it finished"
    # One stored section per key: nothing was generated into storage twice.
    rows = await pool.fetch(
        "SELECT section_key, count(*) AS n FROM sections WHERE client_id = $1 GROUP BY 1", client_id
    )
    assert {r["section_key"]: r["n"] for r in rows} == dict.fromkeys(every, 1)
    # In-flight sections come back after the heartbeat timeout, not the 15-minute start-to-close.
    assert resumed_in < SECTION_HEARTBEAT_TIMEOUT.total_seconds() + 30, resumed_in
