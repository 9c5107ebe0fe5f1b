"""What the intake's outbox holds: one typed command per kind of work, sent to Temporal later
(crm/starter.py).

A row stores the command's ``action`` in its own column and the rest as JSON; ``parse`` reads a
stored row back into its model, so a row written by an earlier release parses as long as this
shape holds (change a field only with a default). A row that does not parse fails with
``MalformedCommand``, which names the action and the fields at fault, never their values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_serializer

from contracts.models import DeliverableRequest, PlanRequest


class StartPlan(BaseModel):
    """Start (or join) the client's plan; ``announce_version``: signal-with-start a newer snapshot."""

    action: Literal["plan"] = "plan"
    request: PlanRequest
    announce_version: int | None = None


class StartDeliverable(BaseModel):
    action: Literal["deliverable"] = "deliverable"
    request: DeliverableRequest


class AnnounceUpdate(BaseModel):
    """Tell the client's running plan and months that snapshot ``version`` exists."""

    action: Literal["announce"] = "announce"
    client_id: str
    version: int


class EnsureSchedules(BaseModel):
    """Create the client's schedules from ``onboarded``, or resume those that exist."""

    action: Literal["schedules"] = "schedules"
    client_id: str
    onboarded: datetime

    @field_serializer("onboarded")
    def _iso(self, onboarded: datetime) -> str:
        return onboarded.isoformat()  # as rows have always stored it ("+00:00", not "Z")


class PauseSchedules(BaseModel):
    action: Literal["pause_schedules"] = "pause_schedules"
    client_id: str


class Cancel(BaseModel):
    """Cancel the row's workflow (its id is the row's ``workflow_id``)."""

    action: Literal["cancel"] = "cancel"


OutboxCommand = Annotated[
    StartPlan | StartDeliverable | AnnounceUpdate | EnsureSchedules | PauseSchedules | Cancel,
    Field(discriminator="action"),
]
_COMMAND: TypeAdapter[OutboxCommand] = TypeAdapter(OutboxCommand)


class MalformedCommand(ValueError):
    """A stored outbox row that is no command this release knows."""


def stored(command: OutboxCommand) -> tuple[str, dict[str, Any]]:
    """The (action, JSON) a row stores for ``command``."""
    return command.action, command.model_dump(mode="json", exclude={"action"})


def parse(action: str, payload: Any) -> OutboxCommand:
    """The command a stored row holds; MalformedCommand when it holds none."""
    if not isinstance(payload, dict):
        raise MalformedCommand(f"outbox row {action!r} holds {type(payload).__name__}, not a JSON object")
    try:
        return _COMMAND.validate_python({**payload, "action": action})
    except ValidationError as err:
        if any(e["type"] == "union_tag_invalid" for e in err.errors()):
            raise MalformedCommand(f"unknown outbox action {action[:60]!r}") from None
        faults = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or '(row)'}: {e['msg']}" for e in err.errors()[:5])
        raise MalformedCommand(f"outbox row {action!r} is malformed: {faults}") from None
