"""Telling the CRM: a document was completed, failed or needs review.

Each event is a row of the CRM outbox (storage.crm_notifications), committed by the activity that
decides it (the assemble activities; ``document_failed``, which the document workflows run when
they fail), so a crash or a restart loses nothing. A sender (``CrmNotifier``, run by the worker
and by the API) POSTs due rows to ``WAVELAUNCH_CRM_WEBHOOK_URL`` in the CRM's own envelope and
header scheme (``X-Webhook-ID``, ``X-Webhook-Event``, ``X-Webhook-Timestamp``,
``X-Webhook-Signature: sha256=<HMAC-SHA256 of the raw body>``), the same delivery id on every
attempt: transient failures are retried at once with backoff, then the row waits and is tried
again later, until the CRM answers 2xx. Payloads carry ids, versions and states, never a
client's personal data or a document's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from temporalio import activity
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from activities.alerts import Undelivered, post_webhook
from contracts.models import DocumentFailure
from domain import signature
from domain.reviews import ReviewState
from storage import crm_notifications
from storage.crm_notifications import Notification
from storage.db import DB
from storage.documents import StoredDocument

log = logging.getLogger(__name__)

COMPLETED = "document.completed"
FAILED = "document.failed"
NEEDS_REVIEW = "document.needs_review"
# A version superseding one a reviewer decided on needs their eyes again.
_REVIEWED = frozenset({ReviewState.APPROVED.value, ReviewState.CHANGES_REQUESTED.value})


@dataclass(frozen=True)
class CrmNotifyConfig:
    url: str | None = None
    secret: str | None = None
    timeout_seconds: float = 10.0
    attempts: int = 4  # tries per pass, transient failures only (1 s, 2 s, 4 s apart)
    retry_base_seconds: float = 1.0
    # After a pass fails: the row waits this long, doubling per failed pass, at most an hour.
    retry_later_seconds: float = 60.0
    poll_seconds: float = 2.0
    batch: int = 50

    @property
    def enabled(self) -> bool:
        return bool(self.url)


def _month(doc: StoredDocument) -> int | None:
    level = doc.level or ""
    return int(level[1:]) if level.startswith("m") and level[1:].isdigit() else None


def document_payload(doc: StoredDocument) -> dict[str, Any]:
    """The envelope's ``data`` for one document version (camelCase, as the CRM spells its own)."""
    return {
        "clientId": doc.client_id,
        "documentId": doc.id,
        "kind": doc.kind,
        "documentKey": doc.document_key,
        "month": _month(doc),
        "version": doc.version,
        "clientVersion": doc.client_version,
        "reviewState": doc.review_state,
        "workflowId": doc.workflow_id,
    }


async def document_stored(
    db: DB, config: CrmNotifyConfig, doc: StoredDocument, previous: StoredDocument | None
) -> None:
    """Enqueue ``document.completed`` for a version just stored, and ``document.needs_review``
    when it supersedes a version a reviewer had approved or asked changes of. Idempotent per
    version (a retried assemble enqueues nothing new)."""
    if not config.enabled:
        return
    data = document_payload(doc)
    await crm_notifications.enqueue(
        db, delivery_id=f"wl_doc_{doc.id}_completed", event=COMPLETED, client_id=doc.client_id, payload=data
    )
    if previous is not None and previous.review_state in _REVIEWED:
        await crm_notifications.enqueue(
            db,
            delivery_id=f"wl_doc_{doc.id}_needs_review",
            event=NEEDS_REVIEW,
            client_id=doc.client_id,
            payload=data
            | {
                "supersedes": {
                    "documentId": previous.id,
                    "version": previous.version,
                    "reviewState": previous.review_state,
                }
            },
        )


class NotifyActivities:
    def __init__(self, pool: asyncpg.Pool, config: CrmNotifyConfig):
        self.pool = pool
        self.config = config

    @activity.defn
    async def document_failed(self, failure: DocumentFailure) -> None:
        """Enqueue ``document.failed`` for a failed document workflow run (once per run). The
        reason is the error's type (e.g. BudgetExceeded), not its message, which may quote
        what a model wrote."""
        if not self.config.enabled:
            return
        await crm_notifications.enqueue(
            self.pool,
            delivery_id=f"wl_failed_{failure.workflow_id}_{failure.run_id}"[:128],
            event=FAILED,
            client_id=failure.client_id,
            payload={
                "clientId": failure.client_id,
                "kind": failure.kind.value,
                "month": failure.month,
                "workflowId": failure.workflow_id,
                "runId": failure.run_id,
                "reason": failure.reason,
            },
        )


def webhook_request(notification: Notification, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery: the CRM's envelope, signed as the CRM signs."""
    sent = datetime.now(UTC).isoformat()
    data = notification.payload | {"occurredAt": notification.created_at.isoformat()}
    body = json.dumps({"event": notification.event, "timestamp": sent, "data": data}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-ID": notification.delivery_id,
        "X-Webhook-Event": notification.event,
        "X-Webhook-Timestamp": sent,
    }
    if secret:
        headers["X-Webhook-Signature"] = signature.sign(body, secret)
    return body, headers


class CrmNotifier:
    """Delivers the CRM outbox: due rows, oldest first; several senders may run (rows are leased)."""

    def __init__(self, pool: asyncpg.Pool, config: CrmNotifyConfig):
        self.pool = pool
        self.config = config
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> tuple[int, int]:
        """One pass over the rows due now; (delivered, failed)."""
        assert self.config.url
        c = self.config
        lease = c.timeout_seconds * c.attempts + c.retry_base_seconds * 2**c.attempts + 30
        delivered = failed = 0
        async with httpx.AsyncClient(timeout=c.timeout_seconds) as http:
            while rows := await crm_notifications.claim(self.pool, limit=c.batch, lease_seconds=lease):
                for row in rows:
                    if await self._deliver(http, row):
                        delivered += 1
                    else:
                        failed += 1
        return delivered, failed

    async def _deliver(self, http: httpx.AsyncClient, row: Notification) -> bool:
        assert self.config.url
        body, headers = webhook_request(row, self.config.secret)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.config.attempts)),
            wait=wait_exponential(multiplier=self.config.retry_base_seconds, max=30),
            retry=retry_if_exception(lambda err: isinstance(err, Undelivered) and err.transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await post_webhook(http, self.config.url, body, headers)
        except Undelivered as err:
            tries = retrying.statistics.get("attempt_number", 1)
            passes = row.attempts // max(1, self.config.attempts) + 1
            retry_in = min(self.config.retry_later_seconds * 2 ** (passes - 1), 3600.0)
            log.warning(
                "CRM webhook %s (%s) not delivered; next try in %.0f s: %s", row.delivery_id, row.event, retry_in, err
            )
            await crm_notifications.mark_failed(self.pool, row.id, tries, str(err), retry_in)
            return False
        await crm_notifications.mark_delivered(self.pool, row.id, retrying.statistics.get("attempt_number", 1))
        log.info("CRM webhook %s (%s) delivered", row.delivery_id, row.event)
        return True

    async def run(self) -> None:
        """Drain now and every ``poll_seconds`` (or when woken), until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # noqa: BLE001 - the loop must outlive a bad pass (Postgres restarting, ...)
                log.exception("CRM outbox pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_seconds):
                    await self._wake.wait()

    async def idle(self, within: float = 30.0) -> None:
        """Return once nothing is due (tests); TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within):
            while await self.pool.fetchval(
                "SELECT count(*) FROM crm_notifications WHERE delivered_at IS NULL AND next_attempt_at <= now()"
            ):
                await self.drain()
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def sending(pool: asyncpg.Pool, config: CrmNotifyConfig):  # type: ignore[no-untyped-def]
    """Run a sender in the background while the block runs (nothing when no URL is set)."""
    if not config.enabled:
        yield None
        return
    notifier = CrmNotifier(pool, config)
    task = asyncio.create_task(notifier.run(), name="crm-outbox")
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
