"""Erasing a client on the real parts: the whole database and the client's workflow histories are
searched afterwards for every personal value the client ever sent (distinctive markers)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from contracts.models import DeliverableRequest, PlanRequest, SummaryRequest
from crm.app import create_app
from crm.events import Envelope
from crm.intake import Intake
from domain.budgets import BudgetScope, BudgetSpec, Period
from domain.client import parse_client
from domain.sections import Level
from domain.summaries import ThreadInput
from service import starts, threads
from storage import budgets, clients, documents, erasure, messages
from storage.clients import UnknownClient
from tests.e2e.conftest import finished, make_settings
from tests.e2e.test_webhooks_e2e import SECRET, delivery
from wavelaunch import commands
from wavelaunch.commands import sample_client_file

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def marked_record(tag: str) -> tuple[dict, list[str]]:
    """A CRM record whose personal values are markers found nowhere else."""
    data = json.loads(sample_client_file().read_text())
    personal = {
        "fullName": f"Quilla Zyx{tag}",
        "email": f"quilla.zyx{tag}@example.com",
        "instagramHandle": f"@zyxig{tag}",
        "tiktokHandle": f"@zyxtt{tag}",
        "personalTurningPoints": f"A private turning point zyxturn{tag} she told the studio.",
        "brandName": f"Zyxbrand{tag}",
    }
    data |= {"id": f"erase{tag}"} | personal
    markers = [f"Zyx{tag}", f"zyx{tag}", f"zyxig{tag}", f"zyxtt{tag}", f"zyxturn{tag}", f"Zyxbrand{tag}"]
    return data, markers


async def dump_database(pool) -> str:
    """Every row of every table, every column, as text."""
    tables = [r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"clients", "usage_ledger", "thread_messages", "cache_entries", "documents"} <= set(tables)
    parts = []
    for table in tables:
        rows = await pool.fetch(f'SELECT t::text AS row FROM "{table}" t')
        parts += [f"{table}: {r['row']}" for r in rows]
    return "\n".join(parts)


async def histories(client, workflow_ids: list[str]) -> str:
    out = []
    for workflow_id in workflow_ids:
        async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
            history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
            out.append(history.to_json())
    return "\n".join(out)


def found(text: str, values: list[str]) -> list[str]:
    lowered = text.lower()
    return [v for v in values if v.lower() in lowered]


@pytest.fixture
def settings():
    # Webhooks start essential plans (quick), and the CRM outbox fills (never sent: no receiver).
    return make_settings(default_level="essential", crm_webhook_url="http://127.0.0.1:9/unreachable")


async def test_an_erased_client_leaves_no_personal_value_in_the_database_or_the_histories(
    pool, client, settings, worker, stub
):
    tag = uuid.uuid4().hex[:10]
    data, markers = marked_record(tag)
    client_id = data["id"]
    intake = Intake(pool, client, settings)
    app = create_app(intake, secret=SECRET, max_age_seconds=300, api_token=TOKEN)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http,
    ):
        # Everything the client can leave behind: the record through the webhook (its delivery,
        # the outbox row), a plan (sections, documents, cache, embeddings, usage, CRM outbox),
        # messages and a ticket, their summaries, a budget with reservations ...
        await budgets.set_budget(pool, BudgetSpec(scope=BudgetScope.CLIENT, client_id=client_id, period=Period.DAILY))
        body, headers = delivery("client.created", data)
        assert (await http.post("/webhooks/crm", content=body, headers=headers)).status_code == 202
        await intake.starts.idle()
        await finished(client.get_workflow_handle(f"plan-{client_id}"))
        thread = ThreadInput.model_validate(
            {
                "thread_id": "kickoff",
                "subject": f"Kick-off with Quilla Zyx{tag}",
                "messages": [
                    {
                        "id": "m1",
                        "author": "client",
                        "text": f"Hi, it's Quilla Zyx{tag}; write to quilla.zyx{tag}@example.com or @zyxig{tag}.",
                        "sent_at": datetime.now(UTC).isoformat(),
                    }
                ],
            }
        )
        await threads.append_threads(pool, client_id, [thread])
        ticket = {
            "clientId": client_id,
            "ticketId": f"tk{tag}",
            "title": "Invoice",
            "description": f"Please bill Zyxbrand{tag} at quilla.zyx{tag}@example.com.",
        }
        body, headers = delivery("ticket.created", ticket)
        assert (await http.post("/webhooks/crm", content=body, headers=headers)).status_code == 202
        await finished(await starts.start(client, settings, SummaryRequest(client_id=client_id)))
        # ... and a month still being written when the erasure comes.
        stub.add_faults([{"kind": "delay", "seconds": 0.5, "times": 200}])
        month = await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1))
        for _ in range(100):
            if (await month.describe()).status == WorkflowExecutionStatus.RUNNING and await pool.fetchval(
                "SELECT count(*) FROM usage_ledger WHERE workflow_id = $1", month.id
            ):
                break
            await asyncio.sleep(0.1)

        dumped = await dump_database(pool)
        assert set(found(dumped, markers)) == set(markers), "the test must see the markers before the erasure"
        tokens_before = await pool.fetchval(
            "SELECT sum(total_tokens) FROM usage_ledger WHERE client_id = $1", client_id
        )
        assert tokens_before > 0

        answer = await http.delete(f"/api/v1/clients/{client_id}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        erased = answer.json()
        assert month.id in erased["workflows_ended"]
        assert {"client_snapshots", "documents", "sections", "thread_messages", "cache_entries"} <= set(
            erased["removed"]
        ) or {"client_snapshots", "documents", "sections", "message_threads", "cache_entries"} <= set(erased["removed"])
        stub.reset()
        await asyncio.sleep(1.0)  # let a section in flight when the month was ended settle

    assert (await month.describe()).status == WorkflowExecutionStatus.TERMINATED
    dumped = await dump_database(pool)
    assert found(dumped, markers) == []
    # Not even the (pseudonymous) id: usage is under the anonymous one; only the tombstone that
    # puts work still in flight under it knows the id, for an hour.
    assert [line for line in dumped.splitlines() if client_id in line] == [
        f"erased_clients: ({client_id},{erased['anon_id']},{line.split(',')[-1]}"
        for line in dumped.splitlines()
        if line.startswith("erased_clients: ") and client_id in line
    ]
    assert await erasure.purge_tombstones(pool, older_than_hours=0) >= 1
    assert client_id not in await dump_database(pool)
    anon = erased["anon_id"]
    tokens_after = await pool.fetchval("SELECT sum(total_tokens) FROM usage_ledger WHERE client_id = $1", anon)
    assert tokens_after >= tokens_before
    # Histories carry ids and figures by design: no personal value in any of them.
    ids = [f"plan-{client_id}", f"summary-{client_id}", month.id]
    history_text = await histories(client, ids)
    assert history_text.count('"eventType"') > 20
    assert found(history_text, markers) == []
    # Nothing left to erase, nothing to show.
    with pytest.raises(UnknownClient):
        await clients.get(pool, client_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        assert (await http.delete(f"/api/v1/clients/{client_id}", headers=AUTH)).status_code == 404


async def test_legal_hold_keeps_the_documents_and_erases_the_rest(pool, client, settings, worker, external):
    tag = uuid.uuid4().hex[:10]
    data, markers = marked_record(tag)
    await clients.upsert(pool, parse_client(data))
    await finished(await starts.start(client, settings, PlanRequest(client_id=data["id"], level=Level.ESSENTIAL)))
    await messages.append_messages(
        pool,
        data["id"],
        "t1",
        ThreadInput.model_validate(
            {
                "thread_id": "t1",
                "messages": [
                    {"id": "m1", "author": "client", "text": f"zyxturn{tag}", "sent_at": datetime.now(UTC).isoformat()}
                ],
            }
        ).messages,
    )
    doc = await documents.latest(pool, data["id"], "business_plan")
    done = await commands.erase_client(external, data["id"], legal_hold=True)
    assert done.erased.legal_hold and "documents" not in done.erased.removed
    kept = await documents.get(pool, doc.id)
    assert kept is not None and f"Zyxbrand{tag}" in kept.markdown  # the document, whole
    with pytest.raises(UnknownClient):
        await clients.get(pool, data["id"])
    for table in ("client_snapshots", "thread_messages", "cache_entries"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE client_id = $1", data["id"]) == 0


async def test_clients_archived_past_the_retention_period_are_erased(pool, client, settings, worker, external):
    old, recent = ids = [f"ret{uuid.uuid4().hex[:10]}" for _ in range(2)]
    intake = Intake(pool, client, settings)
    for client_id in ids:
        record = json.loads(sample_client_file().read_text()) | {"id": client_id}
        await clients.upsert(pool, parse_client(record))
        answer = await intake.handle(
            Envelope(event="client.archived", timestamp=datetime.now(UTC), data={"clientId": client_id}),
            f"whd_{uuid.uuid4().hex}",
        )
        assert answer.status == 202
    await intake.starts.drain()  # the cancels (no app runs the starter here)
    await pool.execute("UPDATE clients SET archived_at = now() - interval '40 days' WHERE id = $1", old)
    done = await commands.erase_archived(external, 30)
    assert [d.client_id for d in done] == [old]
    with pytest.raises(UnknownClient):
        await clients.get(pool, old)
    assert (await clients.get(pool, recent)).version == 1
