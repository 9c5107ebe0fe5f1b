"""What the CRM sends, and what each event makes us do.

A delivery's body is checked in layers, each refusing with nothing stored: it must be JSON
(400), within the input limits of domain/limits.py anywhere in it (nesting depth, control
characters; 422 naming the field), an envelope ``{event, timestamp, data}`` (422), and then
``data`` must have the shape its event needs (422, ``data.<field>``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.limits import EVENT_NAME_PATTERN, MAX_PROBLEMS, ClientId, InputRefused, parse_json, quote, where

T = TypeVar("T", bound=BaseModel)

CLIENT_PLAN_EVENTS = frozenset({"client.created", "client.activated"})
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


class DeliverableData(_Data):
    """``deliverable.created``: whose, and which month (1-8 or "M1"-"M8")."""

    client_id: ClientId = Field(alias="clientId")
    month: int

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


def event_data(model: type[T], data: dict[str, Any]) -> T:
    """``data`` read as ``model``; raises InputRefused naming ``data.<field>`` at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise refusal(err, ("data",)) from None
