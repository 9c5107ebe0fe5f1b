"""Turning one verified CRM event into work: store the client, start or signal workflows.

Every answer is small and fast (the CRM waits 10 s, once): the work is stored in the outbox
and answered 202; crm/outbox_sender.py sends it to Temporal off the request path. Workflow IDs are
deterministic, so a repeated event never starts a second generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from temporalio.client import Client

from contracts.models import DeliverableRequest, PlanRequest
from crm.events import (
    CLIENT_PLAN_EVENTS,
    KNOWN_EVENTS,
    MERGED_CLIENT_EVENTS,
    TICKET_EVENTS,
    ArchivedData,
    DeliverableData,
    Envelope,
    PlanEventData,
    TicketData,
    client_fields,
    event_data,
    ticket_message,
)
from crm.outbox_sender import Starter
from domain.catalogue.plan import sections_for_level
from domain.client import InvalidClientRecord, parse_client
from domain.limits import InputRefused
from domain.reviews import ReviewSource, ReviewState
from domain.sections import DocumentKind, Level
from service import reviews, starts
from service.intake import accept_client
from service.settings import Settings
from storage import clients, documents, erasure, messages, webhook_deliveries
from storage.clients import UnknownClient
from storage.db import DB
from workflows.ids import deliverable_workflow_id, plan_workflow_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class _Refused(Exception):  # noqa: N818 - control flow: rolls the delivery's transaction back
    def __init__(self, answer: Answer):
        self.answer = answer


class Intake:
    def __init__(self, pool: asyncpg.Pool, temporal: Client, settings: Settings):
        self.pool = pool
        self.temporal = temporal
        self.settings = settings
        self.starts = Starter(pool, temporal, settings)

    async def handle(self, envelope: Envelope, delivery_id: str) -> Answer:
        """One verified delivery, in one transaction: its id is claimed first (a redelivery, even
        a concurrent one, gets the first answer), the snapshot and the outbox rows are stored,
        the answer is recorded, and all of it commits at once. A refusal rolls it all back:
        nothing is stored, and the CRM may send a corrected delivery under the same id."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if (first := await webhook_deliveries.claim(conn, delivery_id, envelope.event)) is not None:
                        return Answer(*first)
                    answer = await self._dispatch(conn, envelope)
                    if answer.status >= 400:
                        raise _Refused(answer)
                    await webhook_deliveries.answer(conn, delivery_id, answer.status, answer.body)
            except _Refused as refused:
                return refused.answer
        self.starts.wake()  # committed: the starter sends the new rows now
        return answer

    async def _dispatch(self, conn: DB, envelope: Envelope) -> Answer:
        event = envelope.event
        if event not in KNOWN_EVENTS:
            log.info("ignoring unknown CRM event %r", event)
            return Answer(200, {"status": "ignored", "reason": f"unknown event {event!r}"})
        try:
            if event in CLIENT_PLAN_EVENTS or event == "client.updated":
                return await self._client_event(conn, event, envelope.data, envelope.timestamp)
            if event == "client.archived":
                return await self._archived(conn, envelope.data)
            if event == "deliverable.created":
                return await self._deliverable(conn, envelope.data)
            if event == "businessplan.approved":
                return await self._plan_approved(conn, envelope.data)
            if event in TICKET_EVENTS:
                return await self._ticket(conn, envelope)
            # The rest need no work, but carry the CRM's ids: their shape is checked all the same.
            if event.startswith("deliverable."):
                event_data(DeliverableData, envelope.data)
            elif event.startswith("businessplan."):
                event_data(PlanEventData, envelope.data)
        except reviews.UnknownDocument as err:
            return Answer(404, {"status": "rejected", "errors": [str(err)]})
        except reviews.ReviewRefused as err:
            return Answer(409, {"status": "rejected", "errors": [str(err)]})
        except InvalidClientRecord as err:
            return Answer(422, {"status": "rejected", "errors": err.problems})
        except InputRefused as err:
            return Answer(422, {"status": "rejected", "errors": err.problems})
        except (ValueError, UnknownClient) as err:
            return Answer(422, {"status": "rejected", "errors": [str(err)]})
        return Answer(200, {"status": "ignored", "reason": f"{event} needs no work here"})

    async def _client_event(self, conn: DB, event: str, data: dict[str, Any], at: datetime) -> Answer:
        client_id, fields = client_fields(data)
        if event in MERGED_CLIENT_EVENTS and client_id is not None:
            # Only the changed fields may come: merged onto the stored snapshot (locked, so two
            # partial updates cannot lose each other's fields) and validated as a whole. A
            # client not stored yet must be sent whole. A null clears a field.
            if (stored_now := await clients.current_for_update(conn, client_id)) is not None:
                fields = stored_now.record.wire() | fields
        record = parse_client(fields)
        stored, changed = await accept_client(conn, record)
        if event == "client.activated":
            await erasure.mark_archived(conn, record.id, False)
        if record.status.value != "ACTIVE":
            return Answer(202, {"status": "stored", "client_version": stored.version})
        if event == "client.updated":
            return await self._updated(conn, record.id, stored.version, changed)
        # Signal-with-start (sent by the starter): a running plan folds the new version in;
        # otherwise a plan starts.
        request = PlanRequest(client_id=record.id, level=Level(self.settings.default_level))
        await self.starts.plan(request, announce_version=stored.version, db=conn)
        if self.settings.schedules:
            # Onboarding is when the CRM says the client was created (or activated): the months
            # and summaries run from then by themselves.
            await self.starts.schedules(record.id, at, db=conn)
        return Answer(
            202, {"status": "accepted", "workflow_id": plan_workflow_id(record.id), "client_version": stored.version}
        )

    async def _updated(self, conn: DB, client_id: str, version: int, changed: bool) -> Answer:
        """An update revises what the client already has, as it is: the plan at its own level and
        sections (an essential plan is never upgraded), only the sections whose inputs changed.
        A client with no plan yet gets its snapshot stored and nothing started."""
        if not changed:
            return Answer(200, {"status": "unchanged", "client_version": version})
        # Running documents (a first plan still being written, months in progress) fold the new
        # version in after their current round; finished months pick it up when next requested.
        await self.starts.announce(client_id, version, db=conn)
        shape = await documents.latest_shape(conn, client_id, DocumentKind.BUSINESS_PLAN.value)
        if shape is None:
            return Answer(202, {"status": "stored", "client_version": version})
        level = Level(shape[0] or self.settings.default_level)
        keys = shape[1]
        # A plan narrowed to some sections stays narrowed; a whole level is asked for as a level.
        whole = {s.key for s in sections_for_level(level)} == set(keys)
        request = PlanRequest(client_id=client_id, level=level, sections=None if whole or not keys else keys)
        await self.starts.plan(request, announce_version=version, db=conn)
        return Answer(
            202, {"status": "accepted", "workflow_id": plan_workflow_id(client_id), "client_version": version}
        )

    async def _archived(self, conn: DB, data: dict[str, Any]) -> Answer:
        client_id = event_data(ArchivedData, data).target()
        await erasure.mark_archived(conn, client_id, True)  # the retention period counts from here
        # Through the outbox too, so a cancel never overtakes a start still waiting there.
        ids = [plan_workflow_id(client_id), *(deliverable_workflow_id(client_id, n) for n in range(1, 9))]
        await self.starts.cancel(ids, db=conn)
        await self.starts.pause_schedules(client_id, db=conn)
        return Answer(202, {"status": "cancelling", "workflows": ids})

    async def _plan_approved(self, conn: DB, data: dict[str, Any]) -> Answer:
        """The CRM approved the client's plan: the version it names (``documentId`` or ``version``,
        as our ``document.*`` webhooks sent them), else the newest. A superseded version is
        refused (409) with nothing changed: the CRM approved what it saw, not what is newest."""
        found = event_data(PlanEventData, data)
        if found.document_id is not None:
            doc = await reviews.find_by_id(conn, found.document_id)
            if (doc.client_id, doc.kind) != (found.client_id, DocumentKind.BUSINESS_PLAN.value):
                raise reviews.UnknownDocument(f"document {found.document_id} is not client {found.client_id}'s plan")
        else:
            doc = await reviews.find(conn, found.client_id, version=found.version)
        note = f"CRM plan {found.plan_id}" if found.plan_id else None
        doc = await reviews.review(
            conn, doc, ReviewState.APPROVED, by=found.approved_by or "crm", note=note, source=ReviewSource.CRM
        )
        return Answer(200, {"status": "approved", "document_id": doc.id, "version": doc.version})

    async def _ticket(self, conn: DB, envelope: Envelope) -> Answer:
        """A ticket event becomes a message of the client's ticket thread (``ticket-<ticketId>``),
        which the next summary folds in. Idempotent by content: the same event data sent again
        (under any delivery id) is stored once."""
        found = event_data(TicketData, envelope.data)
        await clients.get(conn, found.client_id)
        thread_id, message = ticket_message(envelope.event, found, envelope.timestamp)
        appended = await messages.append_messages(conn, found.client_id, thread_id, [message], subject=found.heading())
        return Answer(202, {"status": "stored", "thread_id": thread_id, "added": appended.added})

    async def _deliverable(self, conn: DB, data: dict[str, Any]) -> Answer:
        found = event_data(DeliverableData, data)
        request = DeliverableRequest(client_id=found.client_id, month=found.month)
        await starts.check_deliverable(conn, request)
        await self.starts.deliverable(request, db=conn)
        return Answer(202, {"status": "accepted", "workflow_id": deliverable_workflow_id(found.client_id, found.month)})
