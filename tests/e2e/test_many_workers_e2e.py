"""Three worker processes on the real dev server: the load is shared (each worker is given work),
one is killed mid-run and the plans complete on the others, nothing is bought twice, and the
provider's requests-per-minute limit held across all of them (seen at the stub: in no minute
did a model get more requests than its limit)."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from contracts.models import PlanRequest
from domain.catalogue.plan import resolve_sections
from domain.rate_limits import WINDOW_SECONDS
from domain.sections import Level
from service import starts
from tests.e2e.conftest import finished, worker_env
from tests.e2e.test_business_plan_e2e import new_client
from tests.e2e.test_worker_crash_e2e import start_worker
from workflows.business_plan import BusinessPlanWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PLANS = 3
# Binding limits: the plans need more calls of each model than one minute allows.
LIMITS = {
    "gpt-4.1": {"requests_per_minute": 4},
    "gpt-4.1-mini": {"requests_per_minute": 6},
    "gpt-4.1-nano": {"requests_per_minute": 6},
}


async def worker_identities(handle) -> set[str]:
    """The workers that have had this workflow's work: its workflow tasks (prepare and assemble
    run inside them, as local activities) and its activities, running or finished. A finished
    activity's history names only its last attempt's worker, hence the running ones too."""
    found = {a.last_worker_identity for a in (await handle.describe()).raw_description.pending_activities}
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            found.add(event.activity_task_started_event_attributes.identity)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            found.add(event.workflow_task_started_event_attributes.identity)
    return {identity for identity in found if identity}


def most_in_a_minute(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + WINDOW_SECONDS) for t in times), default=0)


async def test_three_workers_share_the_load_survive_a_kill_and_hold_the_limits(
    pool, temporal_env: WorkflowEnvironment, settings, stub, database_url, tmp_path
):
    env = worker_env(
        temporal_env,
        settings,
        stub,
        database_url,
        WAVELAUNCH_WORKER_MAX_CONCURRENT_ACTIVITIES="2",
        WAVELAUNCH_RATE_LIMITS=json.dumps(LIMITS),
        WAVELAUNCH_RATE_LIMIT_MAX_INLINE_WAIT_SECONDS="5",
        WAVELAUNCH_DISABLED_TECHNIQUES='["batching"]',  # one request per section
    )
    await pool.execute("TRUNCATE rate_limit_calls")
    stub.add_faults([{"kind": "delay", "seconds": 1, "times": 1000}])
    log = tmp_path / "worker.log"
    workers = [start_worker({**env, "WAVELAUNCH_STATE_DIR": str(tmp_path / f"state{i}")}, log) for i in range(3)]
    client_ids = [await new_client(pool) for _ in range(PLANS)]
    handles = [
        await starts.start(temporal_env.client, settings, PlanRequest(client_id=c, level=Level.COMPLETE))
        for c in client_ids
    ]
    try:
        # Every worker given work (a workflow task, or an activity running or finished), and a
        # few sections done, before one is killed: the kill then lands on a worker mid-plan.
        seen: set[str] = set()
        for _ in range(600):
            done = []
            for handle in handles:
                progress = await handle.query(BusinessPlanWorkflow.progress)
                if progress:
                    done += [(progress.client_id, s.section_key) for s in progress.sections if s.status == "done"]
                seen |= await worker_identities(handle)
            if len(done) >= 4 and len(seen) == 3:
                break
            assert all(w.poll() is None for w in workers), log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        # The load was shared: all three workers had work within two minutes.
        assert len(seen) == 3, seen
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        results = [await finished(h, within=360) for h in handles]
        waited = 0
        for handle in handles:
            for event in (await handle.fetch_history()).events:
                if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                    waited += 1
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(timeout=30)

    every = sorted(s.key for s in resolve_sections(Level.COMPLETE))
    for result in results:
        assert sorted(s.section_key for s in result.sections) == every
    # Nothing bought twice: one stored section per client and key, and a section finished
    # before the kill was bought exactly once.
    rows = await pool.fetch(
        "SELECT client_id, section_key, count(*) AS n FROM sections WHERE client_id = ANY($1) GROUP BY 1, 2",
        client_ids,
    )
    assert len(rows) == PLANS * len(every) and all(r["n"] == 1 for r in rows)
    bought = await pool.fetch(
        "SELECT client_id, section_key, count(*) AS n FROM usage_ledger"
        " WHERE client_id = ANY($1) AND success AND total_tokens > 0 AND NOT cache_hit GROUP BY 1, 2",
        client_ids,
    )
    bought_n = {(r["client_id"], r["section_key"]): r["n"] for r in bought}
    for key in done:
        assert bought_n.get(key) == 1, f"{key} was bought {bought_n.get(key)} times"
    # The limits held across the three workers, as the provider saw the requests arrive.
    arrivals: dict[str, list[float]] = {}
    for entry in stub.requests():
        arrivals.setdefault(entry["model"], []).append(entry["received_at"])
    for model, limit in LIMITS.items():
        times = sorted(arrivals.get(model, []))
        assert most_in_a_minute(times) <= limit["requests_per_minute"], (model, [round(t - times[0], 2) for t in times])
    # ... and they bound: some sections waited on a workflow timer for their turn.
    assert waited > 0
    print(
        f"\n{PLANS} plans, 3 workers (one killed), each given work before the kill,"
        f" requests per model {[(m, len(t)) for m, t in sorted(arrivals.items())]}, {waited} rate-limit waits"
    )
