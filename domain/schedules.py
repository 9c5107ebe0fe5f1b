"""What runs by itself for a client: each deliverable month on its date, and the weekly client
summary. Pure: the dates and ids; `wavelaunch/schedules.py` turns them into Temporal Schedules.

Month N is started ``(N - 1) * cadence`` after onboarding (M1 at onboarding) and is due
``month_due`` after it starts; the summary runs every ``summary_every`` from one interval after
onboarding, due ``summary_due`` after each start. The due windows are deadlines: the calls take
the cheapest service tier that meets them (tokenopt.service_tiers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.catalogue.deliverables import MONTHS

PREFIX = "wl-"


class ScheduleKind(StrEnum):
    DELIVERABLE = "deliverable"
    SUMMARY = "summary"


@dataclass(frozen=True)
class Cadence:
    """How often the recurring work comes, and how long each piece may take."""

    month_every: timedelta = timedelta(days=30)
    month_due: timedelta = timedelta(days=7)
    summary_every: timedelta = timedelta(days=7)
    summary_due: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        for name in ("month_every", "month_due", "summary_every", "summary_due"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"the {name.replace('_', ' ')} of a schedule must be positive")


@dataclass(frozen=True)
class PlannedSchedule:
    schedule_id: str
    kind: ScheduleKind
    client_id: str
    # The deliverable month (None for the summary).
    month: int | None
    # First (for a month: only) start.
    starts_at: datetime
    # Between two starts (None: once).
    every: timedelta | None
    # Each run's deadline, counted from its start.
    due_within: timedelta
    # The start has passed: started once at creation, as if on time.
    overdue: bool = False


def schedule_id(client_id: str, kind: ScheduleKind, month: int | None = None) -> str:
    """``wl-deliverable-<clientId>-m<N>`` or ``wl-summary-<clientId>``: one id per piece of work,
    so creating the schedules again finds them instead of doubling them."""
    if kind is ScheduleKind.DELIVERABLE:
        return f"{PREFIX}deliverable-{client_id}-m{month}"
    return f"{PREFIX}summary-{client_id}"


def client_of(schedule_id_: str) -> str | None:
    """The client a schedule id belongs to (None: not one of ours)."""
    if schedule_id_.startswith(f"{PREFIX}summary-"):
        return schedule_id_.removeprefix(f"{PREFIX}summary-")
    if schedule_id_.startswith(f"{PREFIX}deliverable-"):
        rest = schedule_id_.removeprefix(f"{PREFIX}deliverable-")
        client, _, month = rest.rpartition("-m")
        return client if client and month.isdigit() else None
    return None


def plan_schedules(client_id: str, onboarded: datetime, now: datetime, cadence: Cadence) -> list[PlannedSchedule]:
    """Every schedule a client gets: one per deliverable month still to come (a month whose
    start has passed is started at once only if it is the current one: earlier months were
    delivered when they were due), and the weekly summary."""
    planned = []
    for month in MONTHS:
        starts = onboarded + (month.number - 1) * cadence.month_every
        if starts + cadence.month_every <= now:
            continue  # an earlier month: not ours to start again
        planned.append(
            PlannedSchedule(
                schedule_id=schedule_id(client_id, ScheduleKind.DELIVERABLE, month.number),
                kind=ScheduleKind.DELIVERABLE,
                client_id=client_id,
                month=month.number,
                starts_at=starts,
                every=None,
                due_within=cadence.month_due,
                overdue=starts <= now,
            )
        )
    planned.append(
        PlannedSchedule(
            schedule_id=schedule_id(client_id, ScheduleKind.SUMMARY),
            kind=ScheduleKind.SUMMARY,
            client_id=client_id,
            month=None,
            starts_at=onboarded + cadence.summary_every,
            every=cadence.summary_every,
            due_within=cadence.summary_due,
        )
    )
    return planned
