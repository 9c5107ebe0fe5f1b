"""What the CRM sends, and what each event makes us do."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

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


class Envelope(BaseModel):
    event: str
    timestamp: datetime
    data: dict[str, Any]
