"""The REST API, /metrics and the OpenAPI document against the real parts, through the ASGI app."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker

from crm.app import create_app
from crm.dashboard import budget_status
from crm.intake import Intake
from domain.budgets import BudgetScope, BudgetSpec, Period
from service.wiring import connect_temporal, worker_runtime
from storage import budgets, documents, usage
from tests.e2e.conftest import make_settings
from tests.e2e.test_business_plan_e2e import new_client
from workflows.business_plan import BusinessPlanWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
TOKEN = "api-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_app(pool, client, settings):
    return create_app(Intake(pool, client, settings), secret="whsec-test", max_age_seconds=300, api_token=TOKEN)


@pytest.fixture
def app(pool, client, settings):
    return make_app(pool, client, settings)


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        yield http


def api_routes(app) -> list[tuple[str, str]]:
    return sorted(
        (route.path, method)
        for route in app.state.api_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    )


async def test_openapi_lists_every_route_and_the_docs_load_offline(app, http):
    doc = (await http.get("/api/v1/openapi.json")).json()
    routes = api_routes(app)
    assert len(routes) >= 6
    for path, method in routes:
        assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} is missing from the OpenAPI document"
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    page = (await http.get("/api/v1/docs")).text
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert (await http.get(f"/api/v1/docs/assets/{asset}")).status_code == 200


async def test_every_api_route_refuses_a_request_without_the_right_token(app, http):
    for path, method in api_routes(app):
        url = path.replace("{workflow_id}", "w").replace("{client_id}", "c").replace("{document_id}", "1")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = await http.request(method, url, headers=headers, json={})
            assert answer.status_code == 401, (method, url, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_plan_started_through_the_api_can_be_watched_and_fetched(http, pool, client, worker):
    client_id = await new_client(pool)
    started = await http.post("/api/v1/plans", json={"client_id": client_id, "level": "essential"}, headers=AUTH)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["workflow_id"] == f"plan-{client_id}"
    assert body["web_ui_url"].endswith(f"/namespaces/default/workflows/plan-{client_id}")
    await client.get_workflow_handle_for(BusinessPlanWorkflow.run, body["workflow_id"]).result()

    status = (await http.get(f"/api/v1/workflows/{body['workflow_id']}", headers=AUTH)).json()
    assert status["status"] == "completed" and status["workflow_type"] == "BusinessPlanWorkflow"
    assert status["progress"]["client_id"] == client_id
    assert {s["status"] for s in status["progress"]["sections"]} == {"done"}

    listed = (await http.get(f"/api/v1/clients/{client_id}/documents", headers=AUTH)).json()["documents"]
    assert [(d["kind"], d["version"]) for d in listed] == [("business_plan", 1)]
    stored = await documents.latest(pool, client_id, "business_plan")
    assert stored is not None and listed[0]["id"] == stored.id

    as_json = await http.get(f"/api/v1/documents/{stored.id}", headers=AUTH)
    assert as_json.json() == await documents.as_json(pool, stored)
    for params, accept in (({"format": "md"}, {}), ({}, {"Accept": "text/markdown"})):
        answer = await http.get(f"/api/v1/documents/{stored.id}", params=params, headers=AUTH | accept)
        assert answer.headers["content-type"].startswith("text/markdown")
        assert answer.text == stored.markdown


async def no_workflow(client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return True
    return False


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/api/v1/plans", {"level": "complete"}, 422, "client_id"),
        ("/api/v1/plans", {"client_id": "KNOWN", "level": "huge"}, 422, "level"),
        ("/api/v1/plans", {"client_id": "KNOWN", "sections": ["no_such_section"]}, 422, "sections"),
        ("/api/v1/plans", {"client_id": "UNKNOWN"}, 404, None),
        ("/api/v1/deliverables", {"client_id": "KNOWN", "month": 9}, 422, "month"),
        ("/api/v1/deliverables", {"client_id": "KNOWN", "month": 0}, 422, "month"),
        ("/api/v1/deliverables", {"client_id": "UNKNOWN", "month": 1}, 404, None),
        ("/api/v1/plans", {"client_id": "KNOWN", "by": "tomorrow"}, 422, "by"),
        ("/api/v1/plans", {"client_id": "KNOWN", "by": "40d"}, 422, "by"),
        ("/api/v1/deliverables", {"client_id": "KNOWN", "month": 1, "urgency": "later"}, 422, "urgency"),
        ("/api/v1/deliverables", {"client_id": "KNOWN", "month": 1, "by": "6h", "urgency": "week"}, 422, "by"),
    ],
)
async def test_bad_requests_are_refused_and_start_nothing(http, pool, client, path, body, status, field):
    known = await new_client(pool)
    unknown = f"nobody{uuid.uuid4().hex[:8]}"
    body = {k: {"KNOWN": known, "UNKNOWN": unknown}.get(v, v) if k == "client_id" else v for k, v in body.items()}
    answer = await http.post(path, json=body, headers=AUTH)
    assert answer.status_code == status, answer.text
    if field:
        assert any(err["loc"][-1] == field for err in answer.json()["detail"]), answer.json()
    for client_id in (known, unknown):
        assert await no_workflow(client, f"plan-{client_id}")
        assert all([await no_workflow(client, f"deliverable-{client_id}-m{n}") for n in range(0, 10)])


async def test_unknown_things_are_404(http):
    for url in ("/api/v1/workflows/plan-nobody", "/api/v1/clients/nobody/documents", "/api/v1/documents/987654321"):
        assert (await http.get(url, headers=AUTH)).status_code == 404, url


def samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def test_metrics_add_up_to_the_usage_report(http, pool, client, worker, settings):
    client_id = await new_client(pool)
    # A roomy budget of this client's, so the budget gauge family has a sample to check.
    daily = BudgetSpec(scope=BudgetScope.CLIENT, client_id=client_id, period=Period.DAILY, token_limit=10_000_000)
    await budgets.set_budget(pool, daily)
    for _ in range(2):  # the second run reuses every section: cache hits
        await http.post("/api/v1/plans", json={"client_id": client_id, "level": "essential"}, headers=AUTH)
        await client.get_workflow_handle(f"plan-{client_id}").result()
    answer = await http.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    report = await usage.report(pool)
    totals = report["totals"]

    assert sum(s.value for s in found["wavelaunch_tokens_total"]) == totals["total_tokens"]
    cached = sum(s.value for s in found["wavelaunch_tokens_total"] if s.labels["kind"] == "cached")
    assert cached == totals["cached_prompt_tokens"]
    assert sum(s.value for s in found["wavelaunch_cost_dollars_total"]) == pytest.approx(totals["cost"])
    assert found["wavelaunch_saved_tokens_total"][0].value == totals["saved_tokens"]
    assert found["wavelaunch_saved_dollars_total"][0].value == pytest.approx(totals["saved_cost"])
    ratios = {s.labels["tier"]: s.value for s in found["wavelaunch_cache_hit_ratio"]}
    assert ratios.get("stored", 0) > 0
    assert ratios == pytest.approx(report["cache_hit_rate_by_tier"])
    assert sum(ratios.values()) == pytest.approx(totals["cache_hit_rate"])
    # Every LLM call of the plan is in the latency histogram (reuses are not).
    calls = await pool.fetchval(
        "SELECT count(*) FROM usage_ledger WHERE request_duration_ms IS NOT NULL"
        " AND NOT (cache_hit AND operation = 'generate_section')"
    )
    assert calls > 0
    assert sum(s.value for s in found["wavelaunch_llm_request_duration_seconds_count"]) == calls
    gauges = {(g.labels["budget"], g.labels["period"]): g.value for g in found["wavelaunch_budget_use_ratio"]}
    assert gauges == pytest.approx(expected_budget_gauges(await budget_status(pool)))
    mine = next(b["use_ratio"] for b in await budget_status(pool) if b["budget"] == f"client {client_id}")
    assert 0 < mine < 0.01  # this plan's tokens over a 10M-token day
    assert gauges[("client", "DAILY")] >= mine  # client budgets: the most used one, no client named
    await budgets.remove(pool, BudgetScope.CLIENT, client_id, None)
    assert found["wavelaunch_worker_metrics_up"][0].value == 0  # no worker metrics on this port
    assert found["wavelaunch_outbox_pending"][0].value == await pool.fetchval(
        "SELECT count(*) FROM workflow_starts WHERE done_at IS NULL"
    )


def expected_budget_gauges(status: list[dict]) -> dict[tuple[str, str], float]:
    """Global budgets one by one; client budgets as one gauge per period, the highest share."""
    out = {(b["budget"], b["period"]): b["use_ratio"] for b in status if b["budget"] == "global"}
    for b in status:
        if b["budget"] != "global":
            key = ("client", b["period"])
            out[key] = max(out.get(key, 0.0), b["use_ratio"])
    return out


async def client_ids_in(text: str, pool) -> list[str]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM clients") if r["id"] in text]


async def test_metrics_name_no_client_unless_an_operator_opts_in(http, pool, client):
    client_id = await new_client(pool)
    await budgets.set_budget(pool, BudgetSpec(scope=BudgetScope.CLIENT, client_id=client_id, period=Period.WEEKLY))
    try:
        default = (await http.get("/metrics")).text
        assert f"client {client_id}" in {b["budget"] for b in await budget_status(pool)}
        assert await client_ids_in(default, pool) == []
        assert ("client", "WEEKLY") in {
            (g.labels["budget"], g.labels["period"]) for g in samples(default)["wavelaunch_budget_use_ratio"]
        }
        opted = make_app(pool, client, make_settings(metrics_client_labels=True))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=opted), base_url="http://api.test") as scrape:
            named = (await scrape.get("/metrics")).text
        assert client_id in await client_ids_in(named, pool)
        gauges = {(g.labels["budget"], g.labels["period"]) for g in samples(named)["wavelaunch_budget_use_ratio"]}
        assert (f"client {client_id}", "WEEKLY") in gauges and ("client", "WEEKLY") not in gauges
    finally:
        await budgets.remove(pool, BudgetScope.CLIENT, client_id, None)


async def test_a_metrics_token_guards_the_scrape(pool, client):
    app = make_app(pool, client, make_settings(metrics_token="scrape-secret"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as scrape:
        for headers in ({}, {"Authorization": "Bearer wrong"}, AUTH, {"Authorization": "scrape-secret"}):
            refused = await scrape.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "wavelaunch_" not in refused.text
        allowed = await scrape.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert allowed.status_code == 200 and "wavelaunch_tokens_total" in allowed.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_metrics_append_the_temporal_workers_own_metrics(temporal_env, pool, settings):
    metered = make_settings(worker_metrics_port=free_port())
    temporal = await connect_temporal(
        metered, temporal_env.client.service_client.config.target_host, runtime=worker_runtime(metered)
    )
    app = make_app(pool, temporal, metered)
    worker = Worker(temporal, task_queue=metered.task_queue, workflows=[BusinessPlanWorkflow])
    async with (
        worker,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http,
    ):
        text = (await http.get("/metrics")).text
    found = samples(text)
    assert found["wavelaunch_worker_metrics_up"][0].value == 1
    assert any(name.startswith("temporal_") for name in found), sorted(found)[:20]


async def test_a_deliverable_started_through_the_api_runs(http, pool, client, worker):
    client_id = await new_client(pool)
    answer = await http.post("/api/v1/deliverables", json={"client_id": client_id, "month": 2}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    assert answer.json()["workflow_id"] == f"deliverable-{client_id}-m2"
    handle = client.get_workflow_handle(answer.json()["workflow_id"])
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    status = (await http.get(f"/api/v1/workflows/{handle.id}", headers=AUTH)).json()
    assert status["status"] in ("running", "completed") and status["workflow_type"] == "DeliverableWorkflow"
    await handle.terminate("the test needs only the start")


async def test_a_deadline_given_to_the_api_reaches_the_workflow(http, pool, client):
    client_id = await new_client(pool)
    body = {"client_id": client_id, "month": 3, "urgency": "week"}
    answer = await http.post("/api/v1/deliverables", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    handle = client.get_workflow_handle(answer.json()["workflow_id"])
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [request] = [json.loads(p.data) for p in started.input.payloads]
    deadline = datetime.fromisoformat(request["deadline"])
    assert timedelta(days=6, hours=23) < deadline - datetime.now(UTC) <= timedelta(days=7)
    await handle.terminate("the test needs only the start")
    # The API's default is interactive: no deadline, every call on standard.
    answer = await http.post("/api/v1/plans", json={"client_id": client_id, "level": "essential"}, headers=AUTH)
    handle = client.get_workflow_handle(answer.json()["workflow_id"])
    started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
    assert json.loads(started.input.payloads[0].data)["deadline"] is None
    await handle.terminate("the test needs only the start")


async def test_a_summary_started_through_the_api_stores_the_messages_first(http, pool, client, worker):
    client_id = await new_client(pool)
    thread = {
        "thread_id": "launch",
        "messages": [
            {
                "id": "m1",
                "author": "client",
                "text": "Can we move the shoot to Thursday?",
                "sent_at": "2026-11-02T09:00:00Z",
            },
            {"id": "m2", "author": "studio", "text": "Yes, Thursday at ten works.", "sent_at": "2026-11-02T09:05:00Z"},
        ],
    }
    body = {"client_id": client_id, "threads": [thread]}
    answer = await http.post("/api/v1/summaries", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    assert answer.json()["workflow_id"] == f"summary-{client_id}"
    result = await client.get_workflow_handle(answer.json()["workflow_id"]).result()
    assert [t["thread_id"] for t in result["threads"]] == ["launch"] and result["client"] is not None
    status = (await http.get(f"/api/v1/workflows/summary-{client_id}", headers=AUTH)).json()
    assert status["workflow_type"] == "SummaryWorkflow" and status["progress"]["status"] == "completed"

    unknown_thread = await http.post(
        "/api/v1/summaries", json={"client_id": client_id, "thread_ids": ["nope"]}, headers=AUTH
    )
    assert unknown_thread.status_code == 422 and unknown_thread.json()["detail"][0]["loc"][-1] == "thread_ids"
    bad_message = {"client_id": client_id, "threads": [{"thread_id": "x", "messages": [{"id": "m1"}]}]}
    assert (await http.post("/api/v1/summaries", json=bad_message, headers=AUTH)).status_code == 422
    nobody = await http.post("/api/v1/summaries", json={"client_id": "nobody-at-all"}, headers=AUTH)
    assert nobody.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM message_threads WHERE client_id = $1", client_id) == 1
