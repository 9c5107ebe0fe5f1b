"""Raising alerts: logged, and POSTed to the operators' webhook signed as the CRM signs its own.

Delivery happens in the background, off the LLM call's path; a transient failure (no answer, a
timeout, 429 or 5xx) is retried with exponential backoff under the same X-Webhook-ID (so the
receiver can drop a repeat); the outcome is recorded on the alert, and a failed delivery never
fails a generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from domain import signature
from domain.budgets import Alert
from storage import alerts, usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = None
    webhook_secret: str | None = None
    timeout_seconds: float = 5.0
    attempts: int = 4  # tries per alert, transient failures only
    retry_base_seconds: float = 1.0  # backoff: 1 s, 2 s, 4 s, ... (at most 30 s)
    # The cache hit rate the studio expects over recent section requests, and the window.
    cache_hit_rate_target: float = 0.6
    cache_window_hours: float = 24.0
    cache_min_sections: int = 50


def webhook_request(alert: Alert, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an alert's POST: the CRM's envelope and signature headers."""
    event = f"alert.{alert.kind}"
    sent = datetime.now(UTC).isoformat()
    body = json.dumps({"event": event, "timestamp": sent, "data": alert.model_dump(mode="json")}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-ID": f"alert_{alert.id}",
        "X-Webhook-Event": event,
        "X-Webhook-Timestamp": sent,
    }
    if secret:
        headers["X-Webhook-Signature"] = signature.sign(body, secret)
    return body, headers


class Undelivered(Exception):  # noqa: N818 - a delivery's outcome, shared with activities/crm_notify.py
    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


async def post_webhook(http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        answer = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as err:  # no answer, or too slow: may work next time
        raise Undelivered(f"webhook delivery failed: {type(err).__name__}: {err}", transient=True) from None
    if answer.status_code >= 300:
        transient = answer.status_code == 429 or answer.status_code >= 500
        raise Undelivered(f"webhook answered {answer.status_code}: {answer.text[:200]}", transient=transient)


class AlertNotifier:
    """Logs new alerts and delivers them to the webhook (if configured) in the background."""

    def __init__(self, pool: asyncpg.Pool, config: AlertConfig):
        self.pool = pool
        self.config = config
        self._pending: set[asyncio.Task[None]] = set()

    def raised(self, new: list[Alert]) -> None:
        """Alerts just recorded: log each, and start its delivery without waiting for it."""
        for alert in new:
            log.warning("alert #%d (%s): %s", alert.id, alert.kind, alert.message)
            if self.config.webhook_url:
                task = asyncio.create_task(self.deliver(alert))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def deliver(self, alert: Alert) -> None:
        assert self.config.webhook_url
        body, headers = webhook_request(alert, self.config.webhook_secret)
        error: str | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.config.attempts)),
            wait=wait_exponential(multiplier=self.config.retry_base_seconds, max=30),
            retry=retry_if_exception(lambda err: isinstance(err, Undelivered) and err.transient),
            before_sleep=lambda state: log.info(
                "alert #%d: attempt %d failed (%s); retrying",
                alert.id,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        )
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout_seconds) as http:
                async for attempt in retrying:
                    with attempt:
                        await post_webhook(http, self.config.webhook_url, body, headers)
        except Undelivered as err:
            error = str(err)
            tries = retrying.statistics.get("attempt_number", 1)
            log.warning("alert #%d not delivered after %d attempt(s): %s", alert.id, tries, error)
        try:
            await alerts.mark_delivery(self.pool, alert.id, error)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            log.warning("alert #%d: delivery outcome not recorded: %s", alert.id, err)

    async def drain(self) -> None:
        """Wait for deliveries in flight (shutdown, tests)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def check_cache_hit_rate(self) -> Alert | None:
        """Alert (once a day) when the hit rate over recent section requests is under target.

        Requests and hits as storage.usage defines them (a hit: served with no model call).
        Fewer than ``cache_min_sections`` requests in the window say nothing yet.
        """
        c = self.config
        row = await self.pool.fetchrow(
            f"""SELECT count(*) AS served,
                       count(*) FILTER (WHERE {usage.HIT}) AS hits,
                       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
                FROM usage_ledger
                WHERE created_at > now() - make_interval(hours => $1::int) AND {usage.REQUEST}""",
            round(c.cache_window_hours),
        )
        if row["served"] < c.cache_min_sections:
            return None
        rate = row["hits"] / row["served"]
        if rate >= c.cache_hit_rate_target:
            return None
        alert = await alerts.insert(
            self.pool,
            kind="cache_hit_rate",
            dedupe_key=f"cache_hit_rate:{row['day']}",
            message=(
                f"cache hit rate {rate:.0%} over the last {c.cache_window_hours:g} h "
                f"({row['hits']} of {row['served']} section requests) is under its target of "
                f"{c.cache_hit_rate_target:.0%}"
            ),
        )
        if alert:
            self.raised([alert])
        return alert
