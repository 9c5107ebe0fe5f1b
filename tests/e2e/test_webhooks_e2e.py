"""The CRM's signed webhooks against the real parts, through the ASGI app."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from contracts.models import PlanRequest
from crm import outbox_sender
from crm.app import create_app
from crm.intake import Intake
from domain import signature
from domain.sections import Level
from service import starts
from storage import clients, documents, workflow_starts
from storage.clients import UnknownClient
from tests.e2e.conftest import closed_runs, finished, requested_sections
from tests.e2e.test_business_plan_e2e import ESSENTIAL, new_client
from wavelaunch.commands import sample_client_file
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deliverable import DeliverableWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SECRET = "whsec-test"


@pytest.fixture
def intake(pool, client, settings):
    return Intake(pool, client, settings)


@pytest.fixture
async def crm(intake, worker):
    """The app with its lifespan (the outbox's sender runs), through an ASGI transport."""
    app = create_app(intake, secret=SECRET, max_age_seconds=300)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm.test") as http,
    ):
        yield http


def delivery(event: str, data: dict, *, secret: str = SECRET, age: timedelta = timedelta(0), wid: str | None = None):
    sent = (datetime.now(UTC) - age).isoformat()
    body = json.dumps({"event": event, "timestamp": sent, "data": data}).encode()
    headers = {
        "X-Webhook-ID": wid or f"whd_{uuid.uuid4().hex}",
        "X-Webhook-Event": event,
        "X-Webhook-Timestamp": sent,
        "X-Webhook-Signature": signature.sign(body, secret),
        "Content-Type": "application/json",
    }
    return body, headers


def record(**changes) -> dict:
    data = json.loads(sample_client_file().read_text())
    return data | {"id": f"crm{uuid.uuid4().hex[:10]}"} | changes


async def test_client_created_starts_one_plan_and_a_redelivery_starts_nothing(crm, intake, pool, client):
    data = record()
    body, headers = delivery("client.created", data)
    first = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert first.status_code == 202 and first.json()["workflow_id"] == f"plan-{data['id']}"
    again = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    # Accepted into the outbox once; the starter sends it to Temporal.
    assert await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE workflow_id = $1", f"plan-{data['id']}") == 1
    await intake.starts.idle()
    await finished(client.get_workflow_handle(f"plan-{data['id']}"))
    runs = await closed_runs(client, f"plan-{data['id']}")
    assert [r.status for r in runs] == [WorkflowExecutionStatus.COMPLETED]
    assert (await clients.get(pool, data["id"])).version == 1


async def test_a_delivery_sent_twice_at_once_is_handled_once(crm, intake, pool):
    """The CRM may resend while the first attempt is still being handled: the second waits on
    the first's claim of the X-Webhook-ID and gets its answer; one snapshot, one start."""
    data = record()
    body, headers = delivery("client.created", data)
    answers = await asyncio.gather(*(crm.post("/webhooks/crm", content=body, headers=headers) for _ in range(2)))
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert await pool.fetchval("SELECT count(*) FROM client_snapshots WHERE client_id = $1", data["id"]) == 1
    assert await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE workflow_id = $1", f"plan-{data['id']}") == 1
    await intake.starts.idle()


@pytest.mark.parametrize(
    "tamper, status",
    [("signature", 401), ("stale", 401), ("malformed", 400), ("invalid record", 422)],
)
async def test_bad_deliveries_are_refused_and_store_nothing(crm, pool, tamper, status):
    data = record()
    if tamper == "invalid record":
        data["email"] = "not-an-email"
    body, headers = delivery("client.created", data, age=timedelta(hours=1) if tamper == "stale" else timedelta(0))
    if tamper == "signature":
        headers["X-Webhook-Signature"] = signature.sign(body, "another-secret")
    if tamper == "malformed":
        body = b'{"event": "client.created", "data": '
        headers["X-Webhook-Signature"] = signature.sign(body, SECRET)
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == status
    if tamper == "invalid record":
        assert any(e.startswith("email") for e in answer.json()["errors"])
    with pytest.raises(UnknownClient):
        await clients.get(pool, data["id"])
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE id = $1", headers["X-Webhook-ID"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE workflow_id = $1", f"plan-{data['id']}") == 0


async def test_unknown_events_are_acknowledged_and_ignored(crm):
    body, headers = delivery("invoice.paid", {"amount": 10})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"


async def test_client_updated_regenerates_only_what_changed(crm, intake, pool, client, stub):
    client_id = await new_client(pool)
    current = (await clients.get(pool, client_id)).record.wire()
    body, headers = delivery("client.created", current)
    await crm.post("/webhooks/crm", content=body, headers=headers)
    await intake.starts.idle()
    await finished(client.get_workflow_handle(f"plan-{client_id}"))
    stub.reset()
    body, headers = delivery("client.updated", current | {"emergingCompetitors": "A brand-new rival."})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 202 and answer.json()["client_version"] == 2
    await intake.starts.idle()
    result = await finished(client.get_workflow_handle_for(BusinessPlanWorkflow.run, f"plan-{client_id}"))
    assert [s.section_key for s in result.sections if s.llm_calls > 0] == ["competitive_landscape"]


async def test_client_updated_keeps_an_essential_plan_essential(crm, intake, pool, client, settings, stub):
    """An update revises the plan the client has, at its level: never an upgrade to complete."""
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    stub.reset()
    current = (await clients.get(pool, client_id)).record.wire()
    body, headers = delivery("client.updated", current | {"emergingCompetitors": "A brand-new rival."})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 202 and answer.json()["client_version"] == 2
    await intake.starts.idle()
    result = await finished(client.get_workflow_handle_for(BusinessPlanWorkflow.run, f"plan-{client_id}"))
    assert sorted(s.section_key for s in result.sections) == sorted(ESSENTIAL)
    assert [s.section_key for s in result.sections if s.llm_calls > 0] == ["competitive_landscape"]
    assert requested_sections(stub) == ["section_patch"]  # a few changed facts: patched
    latest = await documents.latest(pool, client_id, "business_plan")
    assert latest is not None and (latest.version, latest.level, latest.client_version) == (2, "essential", 2)


async def test_client_updated_without_a_document_stores_the_snapshot_and_starts_nothing(crm, intake, pool, client):
    client_id = await new_client(pool)
    current = (await clients.get(pool, client_id)).record.wire()
    body, headers = delivery("client.updated", current | {"brandValues": "Honesty, craft and calm."})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 202 and answer.json() == {"status": "stored", "client_version": 2}
    await intake.starts.idle()
    stored = await clients.get(pool, client_id)
    assert stored.version == 2 and stored.record.brand_values == "Honesty, craft and calm."
    assert await pool.fetchval("SELECT count(*) FROM workflow_starts WHERE workflow_id = $1", f"plan-{client_id}") == 0
    with pytest.raises(RPCError):
        await client.get_workflow_handle(f"plan-{client_id}").describe()


async def test_client_updated_reaches_a_running_deliverable(crm, pool, client, stub):
    client_id = await new_client(pool)
    current = (await clients.get(pool, client_id)).record.wire()
    # Slow answers keep month 1 running while the update arrives.
    stub.add_faults([{"kind": "delay", "seconds": 0.3, "times": 100}])
    body, headers = delivery("deliverable.created", {"clientId": client_id, "month": 1})
    started = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert started.status_code == 202
    month = f"deliverable-{client_id}-m1"
    for _ in range(50):  # visibility is eventually consistent
        if [w async for w in client.list_workflows(f"WorkflowId = '{month}' AND ExecutionStatus = 'Running'")]:
            break
        await asyncio.sleep(0.1)
    body, headers = delivery("client.updated", current | {"brandValues": "Honesty, craft and calm."})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 202
    # The announcement goes through the outbox to the running month, which folds version 2 in.
    result = await finished(client.get_workflow_handle_for(DeliverableWorkflow.run, month))
    assert result.client_version == 2
    sent = await pool.fetchval(
        "SELECT done_at IS NOT NULL FROM workflow_starts WHERE action = 'announce' AND workflow_id = $1",
        f"deliverables-{client_id}",
    )
    assert sent


async def test_deliverable_with_a_bad_month_is_refused(crm, pool):
    client_id = await new_client(pool)
    body, headers = delivery("deliverable.created", {"clientId": client_id, "month": 9})
    answer = await crm.post("/webhooks/crm", content=body, headers=headers)
    assert answer.status_code == 422 and "1–8" in answer.json()["errors"][0]


async def test_an_accepted_start_survives_a_restart_of_the_api(pool, client, settings, worker):
    """The outbox row is committed before the 202: an app that stops before sending it leaves
    it for the next app to send (no event lost), and sending twice starts one workflow."""
    client_id = await new_client(pool)
    await Intake(pool, client, settings).starts.plan(PlanRequest(client_id=client_id, level="essential"))
    assert await workflow_starts.count_pending(pool) >= 1  # nothing drained it: the "crash"
    restarted = Intake(pool, client, settings)
    app = create_app(restarted, secret=SECRET, max_age_seconds=300)
    async with app.router.lifespan_context(app):
        await restarted.starts.idle()
    await finished(client.get_workflow_handle(f"plan-{client_id}"))
    assert [r.status for r in await closed_runs(client, f"plan-{client_id}")] == [WorkflowExecutionStatus.COMPLETED]


async def test_client_archived_cancels_after_the_queued_start(crm, intake, pool, client):
    data = record()
    for event in ("client.created", "client.archived"):
        body, headers = delivery(event, data)
        assert (await crm.post("/webhooks/crm", content=body, headers=headers)).status_code == 202
    await intake.starts.idle()
    handle = client.get_workflow_handle(f"plan-{data['id']}")
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_a_failing_start_holds_back_only_its_own_workflows_later_rows(pool, client, settings):
    starter = Intake(pool, client, settings).starts
    tag = uuid.uuid4().hex[:8]
    rows = [(f"wf-{tag}-a", "no-such-action", {}), (f"wf-{tag}-a", "cancel", {}), (f"wf-{tag}-b", "cancel", {})]
    await workflow_starts.enqueue(pool, rows)
    try:
        sent, failed = await starter.drain()
        assert (sent, failed) == (1, 1)
        state = await pool.fetch(
            "SELECT workflow_id, action, done_at IS NOT NULL AS done, attempts, last_error FROM workflow_starts"
            " WHERE workflow_id LIKE $1 ORDER BY id",
            f"wf-{tag}-%",
        )
        assert [(r["action"], r["done"], r["attempts"]) for r in state] == [
            ("no-such-action", False, 1),
            ("cancel", False, 0),  # waits behind the failed row of the same workflow
            ("cancel", True, 1),
        ]
        assert "no-such-action" in state[0]["last_error"]
    finally:  # leave no pending row behind: other tests wait for an empty outbox
        await pool.execute("UPDATE workflow_starts SET done_at = now() WHERE workflow_id LIKE $1", f"wf-{tag}-%")


async def test_a_send_that_hangs_gives_up_keeps_its_row_and_idle_says_which(pool, client, settings, monkeypatch):
    """A call to Temporal that never answers must not hold the drain (and every later row)."""
    starter = Intake(pool, client, settings).starts
    monkeypatch.setattr(outbox_sender, "SEND_TIMEOUT_SECONDS", 0.2)

    async def never_answers(row):
        await asyncio.Event().wait()

    monkeypatch.setattr(starter, "_send", never_answers)
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    await workflow_starts.enqueue(pool, [(workflow_id, "cancel", {})])
    try:
        assert await starter.drain() == (0, 1)
        attempts, error = await pool.fetchrow(
            "SELECT attempts, last_error FROM workflow_starts WHERE workflow_id = $1 AND done_at IS NULL", workflow_id
        )
        assert attempts == 1 and "no answer from Temporal" in error
        with pytest.raises(TimeoutError, match=workflow_id):
            await starter.idle(within=0.3)
    finally:  # leave no pending row behind: other tests wait for an empty outbox
        await pool.execute("UPDATE workflow_starts SET done_at = now() WHERE workflow_id = $1", workflow_id)


async def test_the_starter_stops_when_cancelled_as_it_is_woken(pool, client, settings):
    """The app's shutdown cancels the starter; a wake landing in the same instant (every
    delivery wakes it) must not swallow the cancel, or the shutdown waits forever."""
    starter = Intake(pool, client, settings).starts
    running = asyncio.create_task(starter.run())
    await asyncio.sleep(0.3)  # past its first drain, waiting to be woken
    starter.wake()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)
