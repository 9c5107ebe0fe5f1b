"""People in the loop, on the real parts: the CRM's payloads as its sender builds them, review
states, the CRM told through its outbox, and tickets feeding summaries."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid

import httpx
import pytest
from docx import Document
from temporalio.client import WorkflowFailureError

from activities.crm_notify import CrmNotifier
from contracts.models import DeliverableRequest, PlanRequest, SummaryRequest
from crm.app import create_app
from crm.intake import Intake
from domain.reviews import ReviewRefused, ReviewSource, ReviewState
from domain.sections import DocumentKind, Level
from service import exports, starts
from service.wiring import crm_notify_config
from storage import clients, crm_notifications, documents, messages
from tests.conftest import venv_binary
from tests.e2e.conftest import finished, make_settings
from tests.e2e.crm_receiver import CrmReceiver
from tests.e2e.test_business_plan_e2e import new_client
from tests.e2e.test_webhooks_e2e import SECRET, delivery, record
from wavelaunch import commands

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CRM_SECRET = "crm-outbound-secret"
TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def receiver():
    server = CrmReceiver(secret=CRM_SECRET)
    yield server
    server.close()


@pytest.fixture
def settings(receiver):
    """Every worker of this module tells the CRM (the receiver) about documents."""
    return make_settings(crm_webhook_url=receiver.url, crm_webhook_secret=CRM_SECRET, webhook_secret=SECRET)


@pytest.fixture
def intake(pool, client, settings):
    return Intake(pool, client, settings)


@pytest.fixture
async def crm(intake, worker):
    """The app with its lifespan: the outbox's starter and the CRM sender run."""
    app = create_app(intake, secret=SECRET, max_age_seconds=300, api_token=TOKEN)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://crm.test") as http,
    ):
        yield http


async def send(crm, event: str, data: dict, wid: str | None = None) -> httpx.Response:
    body, headers = delivery(event, data, wid=wid)
    return await crm.post("/webhooks/crm", content=body, headers=headers)


# -- 0. the CRM's payloads as its sender builds them -----------------------------------------------
async def test_client_created_names_the_client_by_data_client_id(crm, intake, pool):
    data = record()
    client_id = data.pop("id")
    answer = await send(crm, "client.created", {"clientId": client_id, **data})
    assert answer.status_code == 202, answer.text
    stored = await clients.get(pool, client_id)
    assert stored.record.full_name == data["fullName"] and "clientId" not in stored.record.wire()
    await intake.starts.idle()


async def test_a_partial_update_is_merged_onto_the_snapshot_and_checked_whole(crm, pool):
    client_id = await new_client(pool)
    before = (await clients.get(pool, client_id)).record
    answer = await send(crm, "client.updated", {"clientId": client_id, "brandValues": "Craft, calm, candour."})
    assert answer.status_code == 202 and answer.json()["client_version"] == 2, answer.text
    after = (await clients.get(pool, client_id)).record
    assert after.brand_values == "Craft, calm, candour."
    assert (after.full_name, after.email, after.vision_for_venture) == (
        before.full_name,
        before.email,
        before.vision_for_venture,
    )
    # A null clears an optional field.
    answer = await send(crm, "client.updated", {"clientId": client_id, "tiktokHandle": None})
    assert answer.status_code == 202 and (await clients.get(pool, client_id)).record.tiktok_handle is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"fullName": None}, "fullName"),
        ({"age": 7}, "age"),
        ({"id": "someone-else"}, "data.clientId"),
    ],
)
async def test_an_update_that_breaks_the_record_is_refused_naming_the_field(crm, pool, change, field):
    client_id = await new_client(pool)
    answer = await send(crm, "client.updated", {"clientId": client_id, **change})
    assert answer.status_code == 422, answer.text
    assert any(e.startswith(field) for e in answer.json()["errors"]), answer.json()
    assert (await clients.get(pool, client_id)).version == 1


async def test_an_update_for_a_client_not_stored_must_be_whole(crm):
    answer = await send(crm, "client.updated", {"clientId": f"new{uuid.uuid4().hex[:8]}", "brandValues": "x"})
    assert answer.status_code == 422
    assert {e.split(":")[0] for e in answer.json()["errors"]} >= {"fullName", "email"}


@pytest.mark.parametrize(
    "event, data, field",
    [
        ("businessplan.created", {"clientId": "KNOWN", "planId": "bad id!"}, "data.planId"),
        ("deliverable.completed", {"clientId": "KNOWN", "month": 2, "deliverableId": "x" * 100}, "data.deliverableId"),
        ("deliverable.overdue", {"clientId": "KNOWN"}, "data.month"),
        ("ticket.created", {"clientId": "KNOWN"}, "data.ticketId"),
    ],
)
async def test_other_events_carry_their_own_ids_checked(crm, pool, event, data, field):
    client_id = await new_client(pool)
    answer = await send(crm, event, {k: client_id if v == "KNOWN" else v for k, v in data.items()})
    assert answer.status_code == 422, answer.text
    assert any(e.startswith(field) for e in answer.json()["errors"]), answer.json()


async def test_other_events_with_good_ids_are_acknowledged(crm, pool):
    client_id = await new_client(pool)
    for event, data in (
        ("businessplan.created", {"clientId": client_id, "planId": "clplan0001"}),
        ("deliverable.completed", {"clientId": client_id, "deliverableId": "cldel0001", "month": "M2"}),
    ):
        answer = await send(crm, event, data)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text


# -- 1. review states ------------------------------------------------------------------------------
async def two_plan_versions(pool, client, settings) -> tuple[str, documents.StoredDocument, documents.StoredDocument]:
    client_id = await new_client(pool)
    for _ in range(2):
        handle = await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL))
        await finished(handle)
    v1 = await documents.version_of(pool, client_id, "business_plan", "business_plan", 1)
    v2 = await documents.version_of(pool, client_id, "business_plan", "business_plan", 2)
    assert v1 is not None and v2 is not None
    return client_id, v1, v2


async def test_review_from_the_cli_shows_in_plan_show_and_a_superseded_version_is_refused(
    pool, client, settings, worker, external
):
    client_id, v1, v2 = await two_plan_versions(pool, client, settings)
    assert v2.review_state == "draft"
    with pytest.raises(ReviewRefused, match="superseded by v2"):
        await commands.review_document(
            external, client_id, ReviewState.APPROVED, month=None, document_key=None, version=1, by="Ana", note=None
        )
    assert (await documents.get(pool, v1.id)).review_state == "draft"  # nothing changed
    assert await pool.fetchval("SELECT count(*) FROM document_reviews WHERE document_id = ANY($1)", [v1.id, v2.id]) == 0

    doc = await commands.review_document(
        external,
        client_id,
        ReviewState.CHANGES_REQUESTED,
        month=None,
        document_key=None,
        version=None,
        by="Ana",
        note="Tighten the market analysis.",
    )
    assert (doc.id, doc.review_state, doc.reviewed_by) == (v2.id, "changes_requested", "Ana")
    await commands.review_document(
        external, client_id, ReviewState.APPROVED, month=None, document_key=None, version=2, by="Ana", note=None
    )
    shown = await commands.show_document(external, client_id, DocumentKind.BUSINESS_PLAN, "md")
    assert shown.splitlines()[0].startswith("# Business Plan:")
    assert "> Review: **approved** (version 2" in shown and "by Ana" in shown
    as_json = json.loads(await commands.show_document(external, client_id, DocumentKind.BUSINESS_PLAN, "json"))
    assert as_json["review"]["state"] == "approved" and as_json["review"]["by"] == "Ana"
    states = await pool.fetch("SELECT state, source FROM document_reviews WHERE document_id = $1 ORDER BY id", v2.id)
    assert [(r["state"], r["source"]) for r in states] == [("changes_requested", "cli"), ("approved", "cli")]


async def test_a_bad_document_name_is_refused_before_anything(pool, external):
    client_id = await new_client(pool)
    with pytest.raises(commands.UnknownDocument, match="its documents|name one with --document"):
        await commands.review_document(
            external, client_id, ReviewState.APPROVED, month=1, document_key="nope", version=None, by=None, note=None
        )
    with pytest.raises(commands.UnknownDocument, match="no business plan yet"):
        await commands.review_document(
            external, client_id, ReviewState.APPROVED, month=None, document_key=None, version=None, by=None, note=None
        )


async def test_review_through_the_api_and_the_crm_event(crm, pool, client, settings):
    client_id, v1, v2 = await two_plan_versions(pool, client, settings)
    superseded = await crm.post(f"/api/v1/documents/{v1.id}/approve", json={"by": "Ana"}, headers=AUTH)
    assert superseded.status_code == 409 and "superseded by v2" in superseded.json()["detail"]
    no_note = await crm.post(f"/api/v1/documents/{v2.id}/request-changes", json={}, headers=AUTH)
    assert no_note.status_code == 422
    assert (await crm.post("/api/v1/documents/987654321/approve", headers=AUTH)).status_code == 404
    assert (await documents.get(pool, v2.id)).review_state == "draft"

    asked = await crm.post(
        f"/api/v1/documents/{v2.id}/request-changes", json={"by": "Ana", "note": "More numbers."}, headers=AUTH
    )
    assert asked.status_code == 200 and asked.json()["review"]["state"] == "changes_requested"
    listed = (await crm.get(f"/api/v1/clients/{client_id}/documents", headers=AUTH)).json()["documents"]
    assert [(d["version"], d["review_state"]) for d in listed] == [(2, "changes_requested"), (1, "draft")]

    board = (await crm.get("/api/v1/dashboard", headers=AUTH)).json()["reviews"]
    assert (client_id, 2, "changes_requested") in [
        (d["client_id"], d["version"], d["review_state"]) for d in board["waiting"]
    ]
    assert board["counts"]["changes_requested"] >= 1

    # The CRM approves what it saw: a superseded version is refused, nothing stored ...
    refused = await send(crm, "businessplan.approved", {"clientId": client_id, "planId": "clp1", "version": 1})
    assert refused.status_code == 409
    assert (await documents.get(pool, v1.id)).review_state == "draft"
    # ... the newest is approved, and the document's JSON says so.
    approved = await send(crm, "businessplan.approved", {"clientId": client_id, "planId": "clp1", "documentId": v2.id})
    assert approved.status_code == 200 and approved.json() == {"status": "approved", "document_id": v2.id, "version": 2}
    shown = (await crm.get(f"/api/v1/documents/{v2.id}", headers=AUTH)).json()
    assert shown["review"]["state"] == "approved" and shown["review"]["by"] == "crm"
    assert "clp1" in shown["review"]["note"]
    board = (await crm.get("/api/v1/dashboard", headers=AUTH)).json()["reviews"]
    assert client_id not in [d["client_id"] for d in board["waiting"]]
    other = await new_client(pool)
    wrong = await send(crm, "businessplan.approved", {"clientId": other, "documentId": v2.id})
    assert wrong.status_code == 404


# -- 3. the CRM is told ----------------------------------------------------------------------------
async def test_the_crm_is_told_of_completed_documents_signed_and_retried_under_one_id(
    pool, client, settings, worker, receiver
):
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    doc = await documents.latest(pool, client_id, "business_plan")
    # Committed by the assemble activity before any sender ran: a restart would lose nothing.
    rows = await crm_notifications.for_client(pool, client_id)
    assert [(r["event"], r["delivered_at"]) for r in rows] == [("document.completed", None)]
    receiver.failing[client_id] = 2
    notifier = CrmNotifier(pool, crm_notify_config(settings))
    await notifier.idle()
    mine = [r for r in receiver.received if r.json["data"]["clientId"] == client_id]
    assert [r.status for r in mine] == [503, 503, 200]
    assert {r.headers["x-webhook-id"] for r in mine} == {f"wl_doc_{doc.id}_completed"}
    [ok] = [r for r in receiver.delivered() if r.json["data"]["clientId"] == client_id]
    assert ok.headers["x-webhook-event"] == "document.completed"
    assert ok.json["data"] | {"occurredAt": None} == {
        "clientId": client_id,
        "documentId": doc.id,
        "kind": "business_plan",
        "documentKey": "business_plan",
        "month": None,
        "version": 1,
        "clientVersion": 1,
        "reviewState": "draft",
        "workflowId": f"plan-{client_id}",
        "occurredAt": None,
    }
    stored = (await crm_notifications.for_client(pool, client_id))[0]
    assert stored["delivered_at"] is not None and stored["attempts"] == 3


async def test_an_undelivered_notification_waits_and_goes_out_later(pool, client, settings, worker, receiver):
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    receiver.failing[client_id] = -1
    config = crm_notify_config(settings)
    quick = type(config)(**{**config.__dict__, "attempts": 2, "retry_base_seconds": 0.01, "retry_later_seconds": 0.2})
    notifier = CrmNotifier(pool, quick)
    await notifier.idle()  # tried twice, left for later
    [row] = await crm_notifications.for_client(pool, client_id)
    assert row["delivered_at"] is None and row["attempts"] == 2 and "503" in row["last_error"]
    receiver.failing[client_id] = 0
    # A new sender (another process, after a restart) picks it up once it is due.
    async with asyncio.timeout(10):
        while (await crm_notifications.for_client(pool, client_id))[0]["delivered_at"] is None:
            await CrmNotifier(pool, quick).drain()
            await asyncio.sleep(0.1)
    ids = {r.headers["x-webhook-id"] for r in receiver.received if r.json["data"]["clientId"] == client_id}
    assert len(ids) == 1


async def test_a_version_superseding_a_reviewed_one_needs_review_and_a_failure_is_told(
    pool, client, settings, worker, stub
):
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    v1 = await documents.latest(pool, client_id, "business_plan")
    await documents.set_review(pool, v1.id, ReviewState.APPROVED, by="Ana", note=None, source=ReviewSource.CLI)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    events = [(r["event"], r["payload"]["version"]) for r in await crm_notifications.for_client(pool, client_id)]
    assert events == [("document.completed", 1), ("document.completed", 2), ("document.needs_review", 2)]
    [needs] = [r for r in await crm_notifications.for_client(pool, client_id) if r["event"] == "document.needs_review"]
    assert needs["payload"]["supersedes"] == {"documentId": v1.id, "version": 1, "reviewState": "approved"}

    failing = await new_client(pool)
    stub.add_faults([{"kind": "status", "status": 401, "times": 100}])
    with pytest.raises(WorkflowFailureError):
        await finished(await starts.start(client, settings, PlanRequest(client_id=failing, level=Level.ESSENTIAL)))
    [failed] = await crm_notifications.for_client(pool, failing)
    assert failed["event"] == "document.failed"
    assert failed["payload"]["reason"] == "SectionsFailed" and failed["payload"]["workflowId"] == f"plan-{failing}"


# -- 4. tickets feed summaries ---------------------------------------------------------------------
async def test_ticket_events_append_to_the_ticket_thread_once_and_the_next_summary_reads_them(
    crm, pool, client, settings
):
    client_id = await new_client(pool)
    opened = {
        "clientId": client_id,
        "ticketId": "cltk0001",
        "title": "Logo files",
        "status": "open",
        "description": "The logo files will not open on my laptop.",
    }
    for _ in range(2):  # the same event resent under a new delivery id is stored once
        answer = await send(crm, "ticket.created", opened)
        assert answer.status_code == 202, answer.text
    resolved = {
        "clientId": client_id,
        "ticketId": "cltk0001",
        "status": "resolved",
        "resolution": "Sent them again as PNG.",
    }
    assert (await send(crm, "ticket.resolved", resolved)).json()["added"] == 1
    stored = await messages.messages_after(pool, client_id, "ticket-cltk0001")
    assert [m.text.splitlines()[0] for m in stored] == [
        "[ticket created] Logo files (status: open)",
        "[ticket resolved] cltk0001 (status: resolved)",
    ]
    result = await finished(await starts.start(client, settings, SummaryRequest(client_id=client_id)), within=90)
    [thread] = [t for t in result.threads if t.thread_id == "ticket-cltk0001"]
    assert thread.through_seq == 2


# -- 6. a Word export ------------------------------------------------------------------------------
async def cli(external, *args: str, crm_url: str | None = None) -> tuple[int, str]:
    """The installed `wavelaunch` command in its own process, pointed at the running parts (and
    at the CRM receiver, given its URL)."""
    env = {"WAVELAUNCH_CRM_WEBHOOK_URL": crm_url} if crm_url else {}
    env |= {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": external.database_url,
        "TEMPORAL_ADDRESS": external.temporal_address,
        "WAVELAUNCH_STATE_DIR": str(external.state_dir),
        "WAVELAUNCH_TASK_QUEUE": external.task_queue,
    }
    proc = await asyncio.create_subprocess_exec(
        venv_binary("wavelaunch"), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def docx_text(data: bytes) -> tuple[list[str], str]:
    """(headings, all text, tables included) of a .docx."""
    doc = Document(io.BytesIO(data))
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith(("Heading", "Title"))]
    text = "\n".join(p.text for p in doc.paragraphs)
    text += "\n".join(c.text for t in doc.tables for row in t.rows for c in row.cells)
    return headings, text


async def test_plan_and_deliverable_as_word_from_the_cli_and_the_api(crm, pool, client, settings, external, tmp_path):
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    code, out = await cli(external, "document", "approve", client_id, "--by", "Ana")
    assert code == 0 and "business_plan v1 of client" in out and "approved" in out, out
    path = tmp_path / "plan.docx"
    code, out = await cli(external, "plan", "show", client_id, "--format", "docx", "--out", str(path))
    assert code == 0 and "written to" in out, out
    headings, text = docx_text(path.read_bytes())
    doc = await documents.latest(pool, client_id, "business_plan")
    assert headings[0] == doc.markdown.partition("\n")[0].removeprefix("# ")
    assert ["Executive Summary", "Market Analysis", "Competitive Landscape"] == [
        h for h in headings if h in ("Executive Summary", "Market Analysis", "Competitive Landscape")
    ]
    assert "Review: approved (version 1" in text and "by Ana" in text
    # Every string the sections hold is in the Word text.
    for s in (await documents.as_json(pool, doc))["sections"]:
        for value in _strings(s["content"]):
            assert value in text, value
    answer = await crm.get(f"/api/v1/documents/{doc.id}", params={"format": "docx"}, headers=AUTH)
    assert answer.headers["content-type"] == exports.DOCX_MEDIA_TYPE
    assert docx_text(answer.content)[0] == headings

    await finished(await starts.start(client, settings, DeliverableRequest(client_id=client_id, month=1)))
    month = await commands.show_deliverable(external, client_id, 1, None, "docx")
    assert isinstance(month, bytes)
    month_headings, _ = docx_text(month)
    titles = [h for h in month_headings if h.startswith(("Brand Architecture", "Market Fortification"))]
    assert len(titles) == 2 and month_headings.count("Brand Context") == 5
    code, out = await cli(external, "deliverable", "show", client_id, "--month", "1", "-d", "nope", "-f", "docx")
    assert code == 1 and out.startswith("error: month 1 has no document 'nope'"), out


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# -- 2. operator edits that stick ------------------------------------------------------------------
async def test_an_operator_edit_sticks_and_a_regeneration_only_proposes(
    crm, pool, client, settings, external, tmp_path
):
    client_id = await new_client(pool)
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    v1 = await documents.latest(pool, client_id, "business_plan")
    await documents.set_review(pool, v1.id, ReviewState.APPROVED, by="Ana", note=None, source=ReviewSource.CLI)
    generated = {s["key"]: s["content"] for s in (await documents.as_json(pool, v1))["sections"]}
    mine = json.loads(json.dumps(generated["market_analysis"]))
    first = next(k for k, v in mine.items() if isinstance(v, str))
    mine[first] = "The operator's own reading of the market."
    path = tmp_path / "market.json"

    # Bad edits: an unknown section, content failing the schema, a superseded version; nothing changes.
    path.write_text(json.dumps(mine))
    code, out = await cli(external, "document", "edit", client_id, "--section", "team_structure", "--file", str(path))
    assert code == 1 and "has no section 'team_structure'" in out, out
    broken = {k: v for k, v in mine.items() if k != first} | {"surprise": 1}
    path.write_text(json.dumps(broken))
    code, out = await cli(external, "document", "edit", client_id, "-s", "market_analysis", "--file", str(path))
    assert code == 1 and f"{first}: Field required" in out and "surprise" in out, out
    assert (await documents.latest(pool, client_id, "business_plan")).version == 1

    path.write_text(json.dumps(mine))
    code, out = await cli(
        external,
        *("document", "edit", client_id, "-s", "market_analysis", "--file", str(path)),
        crm_url=settings.crm_webhook_url,
    )
    assert code == 0 and "business_plan v2: market_analysis replaced and locked" in out, out
    v2 = await documents.latest(pool, client_id, "business_plan")
    assert v2.review_state == "draft" and "The operator's own reading of the market." in v2.markdown
    # Announced like any new version: it supersedes an approved one, so it needs review.
    told = [(r["event"], r["payload"]["version"]) for r in await crm_notifications.for_client(pool, client_id)]
    assert ("document.needs_review", 2) in told and ("document.completed", 2) in told
    # The approved version is untouched.
    again = await documents.get(pool, v1.id)
    assert (again.review_state, again.markdown, again.section_ids) == ("approved", v1.markdown, v1.section_ids)
    stale = await crm.put(f"/api/v1/documents/{v1.id}/sections/market_analysis", json={"content": mine}, headers=AUTH)
    assert stale.status_code == 409
    invalid = await crm.put(
        f"/api/v1/documents/{v2.id}/sections/market_analysis", json={"content": broken}, headers=AUTH
    )
    assert invalid.status_code == 422 and any(first in d["msg"] for d in invalid.json()["detail"])
    assert (await documents.latest(pool, client_id, "business_plan")).version == 2

    # The client changes what market_analysis reads: the regeneration keeps the operator's text
    # and leaves its own as a proposal, shown as a diff.
    record = (await clients.get(pool, client_id)).record.wire()
    answer = await send(crm, "client.updated", {"clientId": client_id, "targetAudience": "Retired athletes, 60+."})
    assert answer.status_code == 202, answer.text
    await finished(client.get_workflow_handle(f"plan-{client_id}"), within=90)
    for _ in range(100):
        if (await documents.latest(pool, client_id, "business_plan")).version >= 3:
            break
        await asyncio.sleep(0.1)
    v3 = await documents.latest(pool, client_id, "business_plan")
    assert v3.version == 3 and "The operator's own reading of the market." in v3.markdown, record
    listed = (await crm.get(f"/api/v1/clients/{client_id}/proposals", headers=AUTH)).json()
    assert [(p["section_key"], p["state"]) for p in listed] == [("market_analysis", "pending")]
    assert "-The operator's own reading of the market." in listed[0]["diff"]
    code, out = await cli(external, "document", "proposals", client_id)
    assert code == 0 and f"proposal {listed[0]['id']}: business_plan / market_analysis" in out, out

    # Rejected: the lock stays; a further regeneration with the same inputs proposes nothing new.
    code, out = await cli(external, "document", "reject", str(listed[0]["id"]))
    assert code == 0, out
    await finished(await starts.start(client, settings, PlanRequest(client_id=client_id, level=Level.ESSENTIAL)))
    v4 = await documents.latest(pool, client_id, "business_plan")
    assert "The operator's own reading of the market." in v4.markdown
    assert (await crm.get(f"/api/v1/clients/{client_id}/proposals", headers=AUTH)).json() == []
    assert (await crm.post(f"/api/v1/proposals/{listed[0]['id']}/accept", headers=AUTH)).status_code == 409

    # Another change, another proposal; accepted: a new version with it, the section unlocked.
    await send(crm, "client.updated", {"clientId": client_id, "targetAudience": "Students on a budget."})
    await finished(client.get_workflow_handle(f"plan-{client_id}"), within=90)
    for _ in range(100):
        if (pending := (await crm.get(f"/api/v1/clients/{client_id}/proposals", headers=AUTH)).json()) and (
            await documents.latest(pool, client_id, "business_plan")
        ).version >= 5:
            break
        await asyncio.sleep(0.1)
    [proposal] = pending
    accepted = await crm.post(f"/api/v1/proposals/{proposal['id']}/accept", headers=AUTH)
    assert accepted.status_code == 200, accepted.text
    v6 = await documents.latest(pool, client_id, "business_plan")
    assert v6.version == 6 and "The operator's own reading of the market." not in v6.markdown
    assert await pool.fetchval("SELECT count(*) FROM section_locks WHERE client_id = $1", client_id) == 0
    assert (await crm.post("/api/v1/proposals/987654321/reject", headers=AUTH)).status_code == 404
