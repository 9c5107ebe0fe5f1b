"""`POST /webhooks/crm`: verify, deduplicate, act, answer within the CRM's 10 s.

Checks, in order, each refusing with nothing stored or started: the signature (401), the
timestamp window (401), the JSON envelope (400), then the event's own data (422 with the
fields at fault). A delivery seen before (``X-Webhook-ID``) gets its first answer again.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import asyncpg
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm import signature
from crm.events import Envelope
from crm.intake import Answer, Intake

log = logging.getLogger(__name__)


def _answer(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)


async def _seen(pool: asyncpg.Pool, delivery_id: str) -> Answer | None:
    row = await pool.fetchrow("SELECT status_code, response FROM webhook_deliveries WHERE id = $1", delivery_id)
    return Answer(row["status_code"], row["response"]) if row else None


async def _remember(pool: asyncpg.Pool, delivery_id: str, event: str, answer: Answer) -> None:
    await pool.execute(
        "INSERT INTO webhook_deliveries (id, event, status_code, response) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        delivery_id,
        event,
        answer.status,
        answer.body,
    )


def create_app(intake: Intake, *, secret: str, max_age_seconds: float) -> Starlette:
    pool = intake.pool

    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        if not signature.valid(body, request.headers.get("x-webhook-signature"), secret):
            return JSONResponse({"status": "rejected", "errors": ["bad signature"]}, status_code=401)
        try:
            sent = datetime.fromisoformat(request.headers.get("x-webhook-timestamp", ""))
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=UTC)
        except ValueError:
            return JSONResponse({"status": "rejected", "errors": ["missing or bad X-Webhook-Timestamp"]}, 401)
        if abs((datetime.now(UTC) - sent).total_seconds()) > max_age_seconds:
            return JSONResponse({"status": "rejected", "errors": ["stale X-Webhook-Timestamp"]}, status_code=401)
        delivery_id = request.headers.get("x-webhook-id")
        if not delivery_id:
            return JSONResponse({"status": "rejected", "errors": ["missing X-Webhook-ID"]}, status_code=400)
        if (first := await _seen(pool, delivery_id)) is not None:
            return _answer(first)
        try:
            envelope = Envelope.model_validate(json.loads(body))
        except (ValueError, ValidationError) as err:
            return JSONResponse({"status": "rejected", "errors": [f"malformed event: {err}"[:500]]}, status_code=400)
        answer = await intake.handle(envelope)
        if answer.status < 400:
            # Refusals are not remembered: the CRM may resend a corrected delivery.
            await _remember(pool, delivery_id, envelope.event, answer)
        log.info("webhook %s %s -> %d %s", delivery_id, envelope.event, answer.status, answer.body.get("status"))
        return _answer(answer)

    async def healthz(_: Request) -> JSONResponse:
        await pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/webhooks/crm", webhook, methods=["POST"]), Route("/healthz", healthz)])
