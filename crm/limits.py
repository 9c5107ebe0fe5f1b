"""HTTP-level input limits: the request body cap, the delivery id header, and what a refusal
may say (never a long value back). Limits on records and messages are in domain/limits.py.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.limits import DELIVERY_ID_PATTERN, MAX_PROBLEMS, key_label

WEBHOOK_PATH = "/webhooks/crm"


def too_large_message(limit: int) -> str:
    return f"request body larger than {limit:,} bytes (WAVELAUNCH_MAX_BODY_BYTES)"


def _too_large(path: str, limit: int) -> JSONResponse:
    message = too_large_message(limit)
    if path == WEBHOOK_PATH:
        return JSONResponse({"status": "rejected", "errors": [message]}, status_code=413)
    return JSONResponse({"detail": message}, status_code=413)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the cap (an HTTPException, so FastAPI's body
    parsing passes it on rather than calling it a parse error)."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


class BodyCap:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 with a JSON error, at once
    when its Content-Length says so (nothing of it is read), else as soon as the bytes read pass
    the limit. (Starlette's own limiter answers in plain text.)"""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope["path"], self.limit)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, capped, send)


def delivery_id_problem(value: str | None) -> str | None:
    """Why an ``X-Webhook-ID`` header cannot be used, or None."""
    if not value:
        return "missing X-Webhook-ID"
    if not re.match(DELIVERY_ID_PATTERN, value):
        return "X-Webhook-ID must be 1-128 letters, digits, '.', '_', ':' or '-'"
    return None


def exception_handlers(max_body_bytes: int) -> dict[Any, Any]:
    """The app's answers to a body over the cap (413) and to a request that fails validation
    (422 with ``detail[].loc``, ``msg`` and ``type``; FastAPI's own would echo the input)."""

    async def too_large(request: Request, exc: HTTPException) -> JSONResponse:
        return _too_large(request.url.path, max_body_bytes)

    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "loc": [key_label(part) if isinstance(part, str) else part for part in e.get("loc", ())],
                "msg": str(e.get("msg", ""))[:160],
                "type": e.get("type", "value_error"),
            }
            for e in exc.errors()[:MAX_PROBLEMS]
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    return {413: too_large, RequestValidationError: invalid}
