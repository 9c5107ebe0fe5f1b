"""What the CRM sends, and what each event makes us do.

A delivery's body is checked in layers, each refusing with nothing stored: it must be JSON
(400), within the input limits of domain/limits.py anywhere in it (nesting depth, control
characters; 422 naming the field), an envelope ``{event, timestamp, data}`` (422), and then
``data`` must have the shape its event needs (422, ``data.<field>``).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.limits import (
    EVENT_NAME_PATTERN,
    MAX_PROBLEMS,
    MESSAGE_CHARS,
    ClientId,
    CrmId,
    InputRefused,
    MessageText,
    Name,
    ShortText,
    Subject,
    parse_json,
    quote,
    where,
)
from domain.summaries import Author, NewMessage

T = TypeVar("T", bound=BaseModel)

CLIENT_PLAN_EVENTS = frozenset({"client.created", "client.activated"})
# Events whose data may carry only the fields that changed: merged onto the stored snapshot and
# validated whole. ``client.created`` carries the whole record and replaces nothing but itself.
MERGED_CLIENT_EVENTS = frozenset({"client.updated", "client.activated"})
TICKET_EVENTS = frozenset({"ticket.created", "ticket.updated", "ticket.resolved"})
KNOWN_EVENTS = frozenset(
    {
        "client.created",
        "client.updated",
        "client.activated",
        "client.archived",
        "businessplan.created",
        "businessplan.approved",
        "deliverable.created",
        "deliverable.completed",
        "deliverable.overdue",
        "ticket.created",
        "ticket.updated",
        "ticket.resolved",
    }
)


def _event_name(value: str) -> str:
    if not re.match(EVENT_NAME_PATTERN, value):
        raise ValueError("must be an event name such as client.updated (lowercase words joined by dots)")
    return value


class Envelope(BaseModel):
    event: Annotated[str, AfterValidator(_event_name)]
    timestamp: datetime
    data: dict[str, Any]


def refusal(err: ValidationError, prefix: tuple[str, ...] = ()) -> InputRefused:
    """A pydantic error as the fields at fault, values never quoted at length."""
    return InputRefused(
        [f"{where((*prefix, *e['loc'])) or '(body)'}: {e['msg'][:160]}" for e in err.errors()[:MAX_PROBLEMS]]
    )


def parse_envelope(body: bytes) -> Envelope:
    """The delivery's envelope; raises NotJSON (not JSON at all) or InputRefused (the fields at fault)."""
    raw = parse_json(body, "body")
    if not isinstance(raw, dict):
        raise InputRefused(["(body): expected a JSON object {event, timestamp, data}"])
    try:
        return Envelope.model_validate(raw)
    except ValidationError as err:
        raise refusal(err) from None


# -- each event's data -------------------------------------------------------------------------
class _Data(BaseModel):
    # The CRM sends more than we read; what we read must have the right shape.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _ClientRef(_Data):
    id: ClientId | None = None


class ArchivedData(_Data):
    """``client.archived``: the client's id as ``data.id``, ``data.clientId`` or ``data.client.id``."""

    id: ClientId | None = None
    client_id: ClientId | None = Field(None, alias="clientId")
    client: _ClientRef | None = None

    def target(self) -> str:
        found = (self.client.id if self.client else None) or self.id or self.client_id
        if not found:
            raise ValueError("data: client.archived needs data.id or data.clientId")
        return found


def client_fields(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The client's id and the record fields of a ``client.*`` event, as the CRM's sender builds
    them: ``{clientId, ...fields}`` (the id beside the fields, with or without ``id``), flat
    with ``id``, or nested under ``client``. An id given twice must agree (InputRefused)."""
    inner = data.get("client")
    fields = dict(inner) if isinstance(inner, dict) else {k: v for k, v in data.items() if k != "clientId"}
    named = data.get("clientId")
    if named is not None:
        # Checked like any client id (the record's own ``id`` is checked by the record).
        event_data(_ClientIdOnly, {"clientId": named})
        if "id" in fields and fields["id"] != named:
            raise InputRefused(["data.clientId: differs from data.id; send one client id"])
        fields.setdefault("id", named)
    found = fields.get("id")
    return (found if isinstance(found, str) else None), fields


class _ClientIdOnly(_Data):
    client_id: ClientId = Field(alias="clientId")


class DeliverableData(_Data):
    """``deliverable.*``: whose, which month (1-8 or "M1"-"M8"), and the CRM's own id of it."""

    client_id: ClientId = Field(alias="clientId")
    month: int
    deliverable_id: CrmId | None = Field(None, alias="deliverableId")

    @field_validator("month", mode="before")
    @classmethod
    def _month(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be 1-8 or M1-M8")
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"[Mm]?(\d{1,2})", value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"must be 1-8 or M1-M8, got {quote(value)}")
        return int(match.group(1))


class PlanEventData(_Data):
    """``businessplan.*``: whose, the CRM's own id of the plan, and (optionally) which of our
    versions: ``documentId`` or ``version`` as our ``document.*`` webhooks sent them."""

    client_id: ClientId = Field(alias="clientId")
    plan_id: CrmId | None = Field(None, alias="planId")
    document_id: int | None = Field(None, alias="documentId", ge=1, le=2**63 - 1)
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    approved_by: Name | None = Field(None, alias="approvedBy")


class TicketData(_Data):
    """``ticket.*``: whose and which ticket, and what it says (each text bounded as a message)."""

    client_id: ClientId = Field(alias="clientId")
    ticket_id: CrmId = Field(alias="ticketId")
    title: Subject | None = None
    subject: Subject | None = None
    status: ShortText | None = None
    priority: ShortText | None = None
    description: MessageText | None = None
    message: MessageText | None = None
    resolution: MessageText | None = None

    def heading(self) -> str | None:
        return self.title or self.subject


def event_data(model: type[T], data: dict[str, Any]) -> T:
    """``data`` read as ``model``; raises InputRefused naming ``data.<field>`` at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise refusal(err, ("data",)) from None


def ticket_message(event: str, ticket: TicketData, sent_at: datetime) -> tuple[str, NewMessage]:
    """The thread and the message a ``ticket.*`` event appends. The message id is a digest of
    the event and its data, so the same event sent twice is one message."""
    canonical = json.dumps([event, ticket.model_dump(mode="json", by_alias=True)], sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
    what = event.split(".", 1)[1]
    head = f"[ticket {what}] {ticket.heading() or ticket.ticket_id}"
    facts = [f"{k}: {v}" for k, v in (("status", ticket.status), ("priority", ticket.priority)) if v]
    lines = [head + (f" ({', '.join(facts)})" if facts else "")]
    lines += [text for text in (ticket.description, ticket.message, ticket.resolution) if text]
    text = "\n".join(lines)[:MESSAGE_CHARS]
    return f"ticket-{ticket.ticket_id}", NewMessage(
        id=f"{event}:{digest}", author=Author.CLIENT, text=text, sent_at=sent_at
    )
