"""Hostile and oversized input on the real parts (embedded Postgres, the Temporal dev server),
through the web app as the CRM and API clients reach it: never a 5xx, nothing stored from a
refused input, no long value echoed back. The limits themselves: domain/limits.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from crm.app import create_app
from crm.intake import Intake
from domain import signature
from domain.client import InvalidClientRecord, parse_client
from domain.summaries import InvalidMessages, parse_threads
from service.intake import accept_client
from service.threads import append_threads
from storage import clients, messages
from tests import fuzzing
from tests.e2e.test_business_plan_e2e import new_client
from tests.fuzzing import SAMPLE_RECORD, SAMPLE_THREADS, client_records, deep_json, message_files, webhook_bodies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SECRET = "whsec-test"
TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TABLES = ("clients", "client_snapshots", "webhook_deliveries", "workflow_starts", "message_threads", "thread_messages")
# Over HTTP the suite stays quick: a few hundred requests in all. The pure validators get more
# (tests/unit/test_limits.py).
OVER_HTTP = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
ON_POSTGRES = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
async def app(pool, client, settings):
    """The web app with its outbox sender running, and no worker: a start accepted here is sent
    to Temporal and left waiting (nothing is generated)."""
    app = create_app(Intake(pool, client, settings), secret=SECRET, max_age_seconds=300, api_token=TOKEN)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:
    # A 500 comes back as a response (counted, then failed on), not as the app's exception.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://crm.test") as http:
        yield http


async def row_counts(pool) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


def signed(body: bytes, *, delivery_id: str | None = None) -> dict[str, str]:
    return {
        "X-Webhook-ID": delivery_id or f"whd_{uuid.uuid4().hex}",
        "X-Webhook-Timestamp": datetime.now(UTC).isoformat(),
        "X-Webhook-Signature": signature.sign(body, SECRET),
        "Content-Type": "application/json",
    }


def envelope(event: str, data: object) -> bytes:
    return json.dumps({"event": event, "timestamp": datetime.now(UTC).isoformat(), "data": data}).encode()


def record(**changes: object) -> dict:
    return SAMPLE_RECORD | {"id": f"hx{uuid.uuid4().hex[:12]}"} | changes


# -- what the issue found, one by one -----------------------------------------------------------
@pytest.mark.parametrize(
    "case, status, says",
    [
        ("NUL in a client field", 422, "data.fullName: contains a control character (U+0000)"),
        ("NUL in the event name", 422, "event: contains a control character (U+0000)"),
        ("nested 5,000 levels", 422, "body: nested more than 32 levels"),
        ("a 10 kB X-Webhook-ID", 400, "X-Webhook-ID must be 1-128"),
        ("a 5 MB body", 413, "request body larger than 1,048,576 bytes"),
        ("an object as the archived id", 422, "data.id: Input should be a valid string"),
        ("a 10 kB client id", 422, "data.clientId: Value error, must be 1-64"),
        ("data that is not an object", 422, "data: Input should be a valid dictionary"),
        ("NaN", 400, "NaN is not a JSON number"),
        ("an unpaired surrogate", 422, "data.client.brandValues: contains an unpaired surrogate"),
    ],
)
async def test_a_hostile_delivery_is_refused_and_stores_nothing(http, pool, case, status, says):
    delivery_id = None
    match case:
        case "NUL in a client field":
            body = envelope("client.created", record(fullName="Maya\x00Okafor"))
        case "NUL in the event name":
            body = envelope("client.cre\x00ated", record())
        case "nested 5,000 levels":
            body = f'{{"event": "client.created", "timestamp": "2026-01-01T00:00:00Z", "data": {deep_json(5000)}}}'
            body = body.encode()
        case "a 10 kB X-Webhook-ID":
            body, delivery_id = envelope("client.created", record()), uuid.uuid4().hex * 320
        case "a 5 MB body":
            body = envelope("client.created", record(additionalInfo="x" * 5_000_000))
        case "an object as the archived id":
            body = envelope("client.archived", {"id": {"nested": True}})
        case "a 10 kB client id":
            body = envelope("deliverable.created", {"clientId": "c" * 10_000, "month": 1})
        case "data that is not an object":
            body = envelope("client.created", [1, 2])
        case "NaN":
            body = envelope("client.created", record(age=float("nan")))
        case "an unpaired surrogate":
            body = envelope("client.updated", {"client": record(brandValues="calm \udc80")})
    before = await row_counts(pool)
    answer = await http.post("/webhooks/crm", content=body, headers=signed(body, delivery_id=delivery_id))
    assert answer.status_code == status, answer.text
    assert answer.json()["status"] == "rejected"
    assert any(says in error for error in answer.json()["errors"]), answer.json()
    assert len(answer.content) < 500  # nothing long echoed back
    assert await row_counts(pool) == before


async def test_a_body_over_the_cap_is_refused_before_it_is_read_in_full(http, pool):
    """Without a Content-Length (chunked), the cap applies to the bytes as they arrive."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 1
            yield b" " * 65_536

    before = await row_counts(pool)
    answer = await http.post("/webhooks/crm", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "larger than 1,048,576 bytes" in answer.json()["errors"][0]
    assert sent < 64
    api = await http.post("/api/v1/plans", content=chunks(), headers=AUTH | {"Content-Type": "application/json"})
    assert api.status_code == 413 and "larger than" in api.json()["detail"]
    assert await row_counts(pool) == before


async def test_a_redelivery_of_an_accepted_delivery_still_gets_its_first_answer(http, pool):
    body = envelope("client.updated", record(status="INACTIVE"))
    headers = signed(body)
    first = await http.post("/webhooks/crm", content=body, headers=headers)
    again = await http.post("/webhooks/crm", content=body, headers=headers)
    assert first.status_code == again.status_code == 202 and first.json() == again.json()


# -- the REST API: the same rules --------------------------------------------------------------
@pytest.mark.parametrize(
    "path, payload, status, loc",
    [
        ("/api/v1/plans", {"client_id": "a\x00b"}, 422, ["body", "client_id"]),
        ("/api/v1/plans", {"client_id": "c" * 10_000}, 422, ["body", "client_id"]),
        ("/api/v1/plans", {"client_id": "c1", "sections": []}, 422, ["body", "sections"]),
        ("/api/v1/plans", {"client_id": "c1", "sections": ["executive_summary\x00"]}, 422, ["body", "sections", 0]),
        ("/api/v1/deliverables", {"client_id": {"nested": True}, "month": 1}, 422, ["body", "client_id"]),
        ("/api/v1/summaries", {"client_id": "c1", "thread_ids": ["t\x00"]}, 422, ["body", "thread_ids", 0]),
    ],
)
async def test_the_api_refuses_the_same_input_naming_the_field(http, pool, path, payload, status, loc):
    before = await row_counts(pool)
    answer = await http.post(path, json=payload, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert loc in [e["loc"] for e in answer.json()["detail"]]
    assert "input" not in answer.text and len(answer.content) < 1_000  # nothing echoed back
    assert await row_counts(pool) == before


async def test_the_api_refuses_bad_messages_and_stores_none_of_them(http, pool):
    client_id = await new_client(pool)
    threads = json.loads(json.dumps(SAMPLE_THREADS))
    threads[1]["messages"][2]["text"] = "fine until here\x00"
    before = await row_counts(pool)
    answer = await http.post("/api/v1/summaries", json={"client_id": client_id, "threads": threads}, headers=AUTH)
    assert answer.status_code == 422
    assert ["body", "threads", 1, "messages", 2, "text"] in [e["loc"] for e in answer.json()["detail"]]
    assert await row_counts(pool) == before


@pytest.mark.parametrize(
    "url, status",
    [
        ("/api/v1/clients/a%00b/documents", 422),
        (f"/api/v1/clients/{'c' * 10_000}/documents", 422),
        ("/api/v1/workflows/plan-%00", 422),
        ("/api/v1/documents/99999999999999999999999", 422),
        ("/api/v1/documents/-1", 422),
    ],
)
async def test_the_api_refuses_bad_ids_in_the_path(http, url, status):
    answer = await http.get(url, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert len(answer.content) < 1_000


async def test_deeply_nested_json_to_the_api_is_a_client_error(http):
    answer = await http.post(
        "/api/v1/plans", content=deep_json(5_000), headers=AUTH | {"Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500


# -- properties --------------------------------------------------------------------------------
@OVER_HTTP
@given(body=webhook_bodies(datetime.now(UTC).isoformat()))
async def test_any_signed_delivery_gets_no_5xx_and_a_refusal_stores_nothing(http, pool, body):
    raw = body.encode()
    before = await row_counts(pool)
    answer = await http.post("/webhooks/crm", content=raw, headers=signed(raw))
    outcome = "5xx" if answer.status_code >= 500 else "refused" if answer.status_code >= 400 else "accepted"
    fuzzing.record("webhook delivery (HTTP, Postgres)", outcome)
    assert answer.status_code < 500, answer.text
    assert len(answer.content) < 2_000
    if answer.status_code >= 400:
        assert await row_counts(pool) == before


@ON_POSTGRES
@given(data=client_records())
async def test_any_client_record_is_stored_whole_or_refused_whole(pool, data):
    before = await row_counts(pool)
    try:
        parsed = parse_client(data)
    except InvalidClientRecord:
        fuzzing.record("client record (Postgres)", "refused")
        assert await row_counts(pool) == before
        return
    stored, _ = await accept_client(pool, parsed)
    fuzzing.record("client record (Postgres)", "accepted")
    assert (await clients.get(pool, parsed.id)).record.wire() == stored.record.wire()


@ON_POSTGRES
@given(data=message_files())
async def test_any_messages_file_is_stored_whole_or_refused_whole(pool, data):
    client_id = await new_client(pool)
    before = await row_counts(pool)
    try:
        threads = parse_threads(data)
    except InvalidMessages:
        fuzzing.record("messages file (Postgres)", "refused")
        assert await row_counts(pool) == before
        return
    await append_threads(pool, client_id, threads)
    fuzzing.record("messages file (Postgres)", "accepted")
    for thread in threads:
        stored = await messages.messages_after(pool, client_id, thread.thread_id)
        first_of_each_id: dict[str, str] = {}
        for message in thread.messages:
            first_of_each_id.setdefault(message.id, message.text)
        assert [m.text for m in stored] == list(first_of_each_id.values())
