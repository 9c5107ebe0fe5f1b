"""Turning one verified CRM event into work: store the client, start or signal workflows.

Every answer is small and fast (the CRM waits 10 s, once): the generation itself runs in
Temporal. Workflow IDs are deterministic, so a repeated event never starts a second generation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from crm.events import CLIENT_PLAN_EVENTS, KNOWN_EVENTS, Envelope
from domain.client import InvalidClientRecord, parse_client
from domain.deliverables import workflow_id as deliverable_workflow_id
from domain.sections import Level
from storage.clients import UnknownClient
from wavelaunch import plans
from wavelaunch.intake import accept_client
from wavelaunch.settings import Settings
from workflows.models import DeliverableRequest, PlanRequest
from workflows.shared import plan_workflow_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def _client_data(data: dict[str, Any]) -> dict[str, Any]:
    # The CRM nests the record under "client" for some events and sends it flat for others.
    inner = data.get("client")
    return inner if isinstance(inner, dict) else data


def _month(value: Any) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"[Mm]?(\d+)", str(value or ""))
    if not match:
        raise ValueError(f"month must be 1-8 or M1-M8, got {value!r}")
    return int(match.group(1))


class Intake:
    def __init__(self, pool: asyncpg.Pool, temporal: Client, settings: Settings):
        self.pool = pool
        self.temporal = temporal
        self.settings = settings

    async def handle(self, envelope: Envelope) -> Answer:
        event = envelope.event
        if event not in KNOWN_EVENTS:
            log.info("ignoring unknown CRM event %r", event)
            return Answer(200, {"status": "ignored", "reason": f"unknown event {event!r}"})
        try:
            if event in CLIENT_PLAN_EVENTS or event == "client.updated":
                return await self._client_event(event, envelope.data)
            if event == "client.archived":
                return await self._archived(envelope.data)
            if event == "deliverable.created":
                return await self._deliverable(envelope.data)
        except InvalidClientRecord as err:
            return Answer(422, {"status": "rejected", "errors": err.problems})
        except (ValueError, UnknownClient) as err:
            return Answer(422, {"status": "rejected", "errors": [str(err)]})
        return Answer(200, {"status": "ignored", "reason": f"{event} needs no work here"})

    async def _client_event(self, event: str, data: dict[str, Any]) -> Answer:
        record = parse_client(_client_data(data))
        stored, changed = await accept_client(self.pool, record)
        if record.status.value != "ACTIVE":
            return Answer(202, {"status": "stored", "client_version": stored.version})
        if event == "client.updated" and not changed:
            return Answer(200, {"status": "unchanged", "client_version": stored.version})
        level = Level(self.settings.default_level)
        # Signal-with-start: a running plan folds the new version in; otherwise a plan starts
        # (for an update, only the sections whose inputs changed are written: the cache).
        handle = await plans.start_plan(
            self.temporal, self.settings, PlanRequest(client_id=record.id, level=level), announce_version=stored.version
        )
        body: dict[str, Any] = {"status": "started", "workflow_id": handle.id, "client_version": stored.version}
        if event == "client.updated":
            # Months being written now follow too; finished months pick it up when next requested.
            body["signalled"] = await plans.announce_to_deliverables(self.temporal, record.id, stored.version)
        return Answer(202, body)

    async def _archived(self, data: dict[str, Any]) -> Answer:
        client_id = str(_client_data(data).get("id") or data.get("clientId") or "")
        if not client_id:
            raise ValueError("client.archived needs data.id or data.clientId")
        ids = [plan_workflow_id(client_id), *(deliverable_workflow_id(client_id, n) for n in range(1, 9))]
        cancelled = []
        for workflow_id in ids:
            try:
                await self.temporal.get_workflow_handle(workflow_id).cancel()
                cancelled.append(workflow_id)
            except RPCError:
                pass  # not running (or never started): nothing to cancel
        return Answer(202, {"status": "cancelled", "workflows": cancelled})

    async def _deliverable(self, data: dict[str, Any]) -> Answer:
        client_id = str(data.get("clientId") or "")
        month = _month(data.get("month"))
        request = DeliverableRequest(client_id=client_id, month=month)
        await plans.check_deliverable(self.pool, request)
        handle = await plans.start_deliverable(self.temporal, self.settings, request)
        return Answer(202, {"status": "started", "workflow_id": handle.id})
