"""The service's one web app: the CRM webhook, the REST API, /metrics and the dashboard.

`POST /webhooks/crm`: verify, deduplicate, act, answer within the CRM's 10 s.

Checks, in order, each refusing with nothing stored or started: the body's size (413, before
it is read in full), the signature (401), the timestamp window (401), the X-Webhook-ID header
(400), the body is JSON (400), within the input limits and a well-formed envelope (422 with the
fields at fault), then the event's own data (422). A delivery seen before (``X-Webhook-ID``)
gets its first answer again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from activities import crm_notify
from crm import dashboard, limits, metrics
from crm.api import PREFIX, build_router
from crm.auth import bearer_guard, bearer_matches, bearer_token, token_value
from crm.events import parse_envelope
from crm.intake import Answer, Intake
from domain import signature
from domain.limits import InputRefused, NotJSON
from service import erasure
from service.wiring import crm_notify_config

log = logging.getLogger(__name__)


def _answer(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)


@asynccontextmanager
async def _retention(intake: Intake) -> AsyncIterator[None]:
    """Erasure's hourly housekeeping: tombstones forgotten, and the erasure of clients archived
    longer than WAVELAUNCH_ERASE_ARCHIVED_AFTER_DAYS (when set)."""
    sweep = asyncio.create_task(
        erasure.housekeeping_loop(
            intake.pool,
            intake.temporal,
            days=intake.settings.erase_archived_after_days,
            legal_hold=intake.settings.legal_hold_documents,
        ),
        name="erasure-housekeeping",
    )
    try:
        yield
    finally:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep


def create_app(intake: Intake, *, secret: str, max_age_seconds: float, api_token: str | None = None) -> FastAPI:
    """The app; ``api_token`` None means the API needs no token (serve it on 127.0.0.1 only:
    ``crm.auth.check_bind``)."""
    pool = intake.pool
    settings = intake.settings
    metrics_token = token_value(settings.metrics_token)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The outbox's sender runs as long as the app: accepted webhooks reach Temporal from here.
        sender = asyncio.create_task(intake.starts.run(), name="outbox-starter")
        try:
            # And the CRM outbox (documents completed, failed, needing review), when configured.
            async with crm_notify.sending(pool, crm_notify_config(settings)), _retention(intake):
                yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    # FastAPI's own docs page loads Swagger UI from a CDN; fastapi-offline serves the same assets
    # from its package, so the docs work on a closed network.
    app = FastAPIOffline(
        title="Wavelaunch",
        summary="Business plans, monthly deliverables and summaries, generated durably and frugally.",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        static_url=f"{PREFIX}/docs/assets",
        # No validator badge: it would call an outside service.
        swagger_ui_parameters={"validatorUrl": None},
        lifespan=lifespan,
        exception_handlers=limits.exception_handlers(settings.max_body_bytes),
    )
    app.add_middleware(limits.BodyCap, limit=settings.max_body_bytes)

    def rejected(status: int, errors: list[str]) -> JSONResponse:
        return JSONResponse({"status": "rejected", "errors": errors}, status_code=status)

    async def webhook(request: Request) -> JSONResponse:
        try:
            body = await request.body()
        except limits.BodyTooLarge:
            return rejected(413, [limits.too_large_message(settings.max_body_bytes)])
        if not signature.valid(body, request.headers.get("x-webhook-signature"), secret):
            return rejected(401, ["bad signature"])
        try:
            sent = datetime.fromisoformat(request.headers.get("x-webhook-timestamp", ""))
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=UTC)
        except ValueError:
            return rejected(401, ["missing or bad X-Webhook-Timestamp"])
        if abs((datetime.now(UTC) - sent).total_seconds()) > max_age_seconds:
            return rejected(401, ["stale X-Webhook-Timestamp"])
        delivery_id = request.headers.get("x-webhook-id")
        if problem := limits.delivery_id_problem(delivery_id):
            return rejected(400, [problem])
        assert delivery_id is not None
        try:
            envelope = parse_envelope(body)
        except NotJSON as err:
            return rejected(400, [f"malformed event: {p}" for p in err.problems])
        except InputRefused as err:
            return rejected(422, err.problems)
        answer = await intake.handle(envelope, delivery_id)
        log.info("webhook %s %s -> %d %s", delivery_id, envelope.event, answer.status, answer.body.get("status"))
        return _answer(answer)

    async def healthz(_: Request) -> JSONResponse:
        await pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def metrics_text(request: Request) -> Response:
        if metrics_token is not None and not bearer_matches(
            bearer_token(request.headers.get("authorization")), metrics_token
        ):
            return JSONResponse(
                {"detail": "missing or wrong metrics token: send `Authorization: Bearer <WAVELAUNCH_METRICS_TOKEN>`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        # A client per scrape (every 15 s or so): nothing to keep open between scrapes.
        async with httpx.AsyncClient() as http:
            return Response(await metrics.exposition(pool, settings, http), media_type=CONTENT_TYPE_LATEST)

    async def dashboard_page(_: Request) -> HTMLResponse:
        return HTMLResponse(dashboard.page())

    async def dashboard_script(_: Request) -> Response:
        return Response(dashboard.script(), media_type="text/javascript")

    # Outside the OpenAPI document: the webhook is the CRM's (signed, not token-protected), the
    # rest are pages and probes.
    app.add_route(limits.WEBHOOK_PATH, webhook, methods=["POST"])
    app.add_route("/healthz", healthz)
    app.add_route("/metrics", metrics_text)
    app.add_route("/dashboard", dashboard_page)
    app.add_route("/dashboard/dashboard.js", dashboard_script)
    api = build_router(pool, intake.temporal, settings, bearer_guard(api_token))
    app.include_router(api)
    app.state.api_router = api  # what the OpenAPI document must list (tests/e2e/test_api_e2e.py)
    return app
