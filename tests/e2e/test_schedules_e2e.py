"""Schedules on the dev server (the time-skipping server does not implement them): a client's
months and weekly summary are created from its onboarding date, a month already due starts at
once with its deadline, `client.archived` pauses them all and `client.activated` resumes them,
and the CLI's commands act on them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus
from temporalio.service import RPCError

from crm.app import create_app
from crm.intake import Intake
from service import schedules
from service.schedules import UnknownSchedule
from storage.clients import UnknownClient
from tests.e2e.conftest import make_settings
from tests.e2e.test_business_plan_e2e import new_client
from tests.e2e.test_webhooks_e2e import SECRET, delivery, record
from wavelaunch import commands

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def started_with_prefix(client: Client, prefix: str, within: float = 20.0) -> list[str]:
    """Ids of workflows whose id starts with ``prefix`` (a scheduled run's id has the time appended)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = [w.id async for w in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'")]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def cleanup(client: Client, client_id: str) -> None:
    for schedule_id in await schedules.client_schedule_ids(client, client_id):
        await client.get_schedule_handle(schedule_id).delete()
    async for w in client.list_workflows(f"WavelaunchClientId = '{client_id}' AND ExecutionStatus = 'Running'"):
        await client.get_workflow_handle(w.id).terminate("test over")


async def test_a_clients_schedules_from_its_onboarding_date(client: Client) -> None:
    settings = make_settings(schedules=True)
    client_id = f"sch{uuid.uuid4().hex[:10]}"
    onboarded = datetime.now(UTC) - timedelta(days=31)  # in month 2
    try:
        ids = await schedules.ensure(client, settings, client_id, onboarded)
        assert ids == [f"wl-deliverable-{client_id}-m{n}" for n in range(2, 9)] + [f"wl-summary-{client_id}"]
        assert await schedules.client_schedule_ids(client, client_id) == sorted(ids)

        m3 = await schedules.describe(client, f"wl-deliverable-{client_id}-m3")
        assert m3.workflow == "DeliverableWorkflow" and not m3.paused
        assert m3.next_runs == [onboarded.replace(microsecond=0) + timedelta(days=60)]
        summary = await schedules.describe(client, f"wl-summary-{client_id}")
        assert summary.workflow == "SummaryWorkflow"
        assert [b - a for a, b in zip(summary.next_runs, summary.next_runs[1:], strict=False)] == [
            timedelta(days=7)
        ] * 2

        # Month 2 was due: it started at once, carrying its deadline (7 days from its start).
        [run] = await started_with_prefix(client, f"deliverable-{client_id}-m2")
        handle = client.get_workflow_handle(run)
        history = await handle.fetch_history()
        attrs = history.events[0].workflow_execution_started_event_attributes
        request = json.loads(attrs.input.payloads[0].data)
        assert request["month"] == 2 and request["within"] == "P7D"
        described = await handle.describe()
        assert described.typed_search_attributes  # filterable in the Web UI like any other run

        # The action is what `deliverable generate` would start, with the month's deadline.
        action = (await client.get_schedule_handle(m3.schedule_id).describe()).schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.id == f"deliverable-{client_id}-m3"

        # Paused, then resumed by a second ensure (a re-activated client), never doubled.
        assert len(await schedules.pause_client(client, client_id)) == 8
        assert all([(await schedules.describe(client, i)).paused for i in ids])
        assert await schedules.ensure(client, settings, client_id, onboarded) == ids
        assert not any([(await schedules.describe(client, i)).paused for i in ids])

        # Triggered by hand: the summary runs now.
        await schedules.trigger(client, f"wl-summary-{client_id}")
        assert await started_with_prefix(client, f"summary-{client_id}")

        assert await schedules.remove(client, [f"wl-deliverable-{client_id}-m8"])
        assert f"wl-deliverable-{client_id}-m8" not in await schedules.client_schedule_ids(client, client_id)
        with pytest.raises(UnknownSchedule, match="no schedule"):
            await schedules.describe(client, f"wl-deliverable-{client_id}-m8")
        with pytest.raises(UnknownSchedule, match="not a Wavelaunch schedule"):
            await schedules.describe(client, "someone-elses")
    finally:
        await cleanup(client, client_id)


async def test_client_created_makes_the_schedules_and_archived_pauses_them(pool, client: Client) -> None:
    settings = make_settings(schedules=True)
    intake = Intake(pool, client, settings)
    app = create_app(intake, secret=SECRET, max_age_seconds=300)
    data = record()
    client_id = data["id"]
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm.test") as http,
        ):
            body, headers = delivery("client.created", data)
            assert (await http.post("/webhooks/crm", content=body, headers=headers)).status_code == 202
            await intake.starts.idle()
            ids = await schedules.client_schedule_ids(client, client_id)
            assert len(ids) == 9 and not any([(await schedules.describe(client, i)).paused for i in ids])
            # Month 1 starts at onboarding: it runs now, by itself (no worker here: it waits queued).
            [m1] = await started_with_prefix(client, f"deliverable-{client_id}-m1")
            assert (await client.get_workflow_handle(m1).describe()).status == WorkflowExecutionStatus.RUNNING

            body, headers = delivery("client.archived", {"clientId": client_id})
            assert (await http.post("/webhooks/crm", content=body, headers=headers)).status_code == 202
            await intake.starts.idle()
            assert all([(await schedules.describe(client, i)).paused for i in ids])
    finally:
        try:
            await cleanup(client, client_id)
        except RPCError:
            pass


async def test_the_schedule_commands(pool, client: Client, external) -> None:
    client_id = await new_client(pool)
    onboarded = datetime.now(UTC) + timedelta(days=1)  # nothing due yet: nothing starts
    try:
        with pytest.raises(UnknownClient):
            await commands.schedule_create(external, "nobody", onboarded)
        ids = await commands.schedule_create(external, client_id, onboarded)
        assert len(ids) == 9
        listed = await commands.schedule_list(external, client_id)
        assert [i.schedule_id for i in listed] == sorted(ids)
        assert (await commands.schedule_show(external, ids[0])).next_runs[0] == onboarded.replace(microsecond=0)
        assert await commands.schedule_pause(external, None, client_id) == sorted(ids)
        assert await commands.schedule_resume(external, [ids[0]], None) == [ids[0]]
        assert [i.paused for i in await commands.schedule_list(external, client_id)].count(False) == 1
        with pytest.raises(UnknownSchedule, match="not both"):
            await commands.schedule_pause(external, [ids[0]], client_id)
        with pytest.raises(UnknownSchedule, match="no schedule"):
            await commands.schedule_trigger(external, f"wl-summary-{client_id}x")
        assert await commands.schedule_remove(external, None, client_id) == sorted(ids)
        with pytest.raises(UnknownSchedule, match="has no schedules"):
            await commands.schedule_remove(external, None, client_id)
    finally:
        await cleanup(client, client_id)
