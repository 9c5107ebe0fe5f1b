"""Outbox commands: typed on the way in, parsed on the way out, in the JSON rows have always
held (a row an earlier release stored must still be sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.models import DeliverableRequest, PlanRequest
from crm import outbox_commands
from crm.outbox_commands import (
    AnnounceUpdate,
    Cancel,
    EnsureSchedules,
    MalformedCommand,
    PauseSchedules,
    StartDeliverable,
    StartPlan,
)
from domain.sections import Level

ONBOARDED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_rows_are_stored_as_they_always_were():
    plan = PlanRequest(client_id="c1", level=Level.ESSENTIAL)
    month = DeliverableRequest(client_id="c1", month=2)
    # What crm/starter.py wrote before commands were typed.
    before = [
        ("plan", {"request": plan.model_dump(mode="json"), "announce_version": 3}),
        ("deliverable", {"request": month.model_dump(mode="json")}),
        ("schedules", {"client_id": "c1", "onboarded": ONBOARDED.isoformat()}),
        ("pause_schedules", {"client_id": "c1"}),
        ("announce", {"client_id": "c1", "version": 4}),
        ("cancel", {}),
    ]
    now = [
        StartPlan(request=plan, announce_version=3),
        StartDeliverable(request=month),
        EnsureSchedules(client_id="c1", onboarded=ONBOARDED),
        PauseSchedules(client_id="c1"),
        AnnounceUpdate(client_id="c1", version=4),
        Cancel(),
    ]
    assert [outbox_commands.stored(c) for c in now] == before
    assert [outbox_commands.parse(action, payload) for action, payload in before] == now


def test_a_stored_row_parses_into_its_typed_command():
    command = outbox_commands.parse(
        "plan", {"request": {"client_id": "c1", "level": "standard", "deadline": "2026-03-02T00:00:00+00:00"}}
    )
    assert isinstance(command, StartPlan)
    assert command.request.level is Level.STANDARD and command.announce_version is None
    assert command.request.deadline == datetime(2026, 3, 2, tzinfo=UTC)
    schedules = outbox_commands.parse("schedules", {"client_id": "c1", "onboarded": "2026-03-01T09:30:00+01:00"})
    assert isinstance(schedules, EnsureSchedules)
    assert schedules.onboarded.utcoffset() == timedelta(hours=1)


def test_an_unknown_action_says_so():
    with pytest.raises(MalformedCommand, match="unknown outbox action 'no-such-action'"):
        outbox_commands.parse("no-such-action", {})


@pytest.mark.parametrize(
    ("action", "payload", "fault"),
    [
        ("plan", {}, "request: Field required"),
        ("plan", {"request": {"client_id": "c1", "level": "platinum"}}, "request.level: "),
        ("announce", {"client_id": "c1", "version": "four"}, "version: "),
        ("schedules", {"client_id": "c1", "onboarded": "soon"}, "onboarded: "),
        ("cancel", ["not", "an", "object"], "holds list, not a JSON object"),
    ],
)
def test_a_malformed_row_names_the_fields_at_fault_not_their_values(action, payload, fault):
    with pytest.raises(MalformedCommand) as caught:
        outbox_commands.parse(action, payload)
    message = str(caught.value)
    assert fault in message and action in message
    assert "platinum" not in message and "four" not in message and "soon" not in message
