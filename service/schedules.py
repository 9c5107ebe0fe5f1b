"""Temporal Schedules for a client's recurring work (domain.schedules says what and when): each
deliverable month on its date and the weekly client summary, each run carrying its deadline so
its calls take the cheapest service tier that meets it. Created on `client.created` /
`client.activated` (through the outbox, crm/outbox_sender.py), paused on `client.archived`, and
managed with `wavelaunch schedule list|show|pause|resume|trigger|remove`; each is in the Web UI
under Schedules.

A scheduled run's workflow id is Temporal's: the action's id (``deliverable-<clientId>-m<N>``,
``summary-<clientId>``) with the scheduled time appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from contracts.models import DeliverableRequest, SummaryRequest
from domain.catalogue import deliverables
from domain.queues import lane_for
from domain.schedules import (
    PREFIX,
    Cadence,
    PlannedSchedule,
    ScheduleKind,
    client_of,
    plan_schedules,
)
from domain.schedules import schedule_id as make_id
from service.settings import Settings
from workflows import kinds
from workflows import search_attributes as sa


class UnknownSchedule(LookupError):
    pass


@dataclass(frozen=True)
class ScheduleInfo:
    schedule_id: str
    client_id: str | None
    workflow: str
    paused: bool
    note: str
    next_runs: list[datetime]
    recent_runs: list[tuple[datetime, str]]  # (scheduled time, workflow id)
    running: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "client_id": self.client_id,
            "workflow": self.workflow,
            "paused": self.paused,
            "note": self.note,
            "next_runs": [t.isoformat() for t in self.next_runs],
            "recent_runs": [{"scheduled_at": t.isoformat(), "workflow_id": w} for t, w in self.recent_runs],
            "running": self.running,
        }


def cadence(settings: Settings) -> Cadence:
    return Cadence(
        month_every=timedelta(days=settings.deliverable_cadence_days),
        month_due=timedelta(days=settings.deliverable_due_days),
        summary_every=timedelta(days=settings.summary_every_days),
        summary_due=timedelta(hours=settings.summary_due_hours),
    )


def _at(when: datetime) -> ScheduleCalendarSpec:
    """A calendar spec matching one instant only (the year pins it): a month starts once."""
    when = when.astimezone(UTC)
    return ScheduleCalendarSpec(
        year=[ScheduleRange(when.year)],
        month=[ScheduleRange(when.month)],
        day_of_month=[ScheduleRange(when.day)],
        hour=[ScheduleRange(when.hour)],
        minute=[ScheduleRange(when.minute)],
        second=[ScheduleRange(when.second)],
        comment="once",
    )


def _action(
    kind: kinds.Kind[Any], request: Any, memo: dict[str, Any], settings: Settings
) -> ScheduleActionStartWorkflow:
    """Start ``kind`` as the one start function would (its id, search attributes), on the
    background queue: nobody is waiting on a scheduled run."""
    assert kind.start is not None
    attributes = [*kind.start.search_attributes(request), SearchAttributePair(sa.STATUS, kinds.QUEUED)]
    return ScheduleActionStartWorkflow(
        kind.workflow.run,
        request,
        id=kind.start.workflow_id(request),
        task_queue=settings.queue_for(lane_for(scheduled=True)),
        typed_search_attributes=TypedSearchAttributes(attributes),
        memo=memo | {"scheduled": True},
    )


def _schedule(planned: PlannedSchedule, settings: Settings) -> Schedule:
    if planned.kind is ScheduleKind.DELIVERABLE:
        assert planned.month is not None
        month = DeliverableRequest(
            client_id=planned.client_id,
            month=planned.month,
            within=planned.due_within,
            batch_poll_seconds=settings.bulk_poll_seconds,
        )
        action = _action(kinds.DELIVERABLE, month, {"client_id": planned.client_id, "month": planned.month}, settings)
        spec = ScheduleSpec(calendars=[_at(planned.starts_at)])
        note = f"month {planned.month}, due {planned.due_within} after it starts"
    else:
        assert planned.every is not None
        summary = SummaryRequest(client_id=planned.client_id, within=planned.due_within)
        action = _action(kinds.SUMMARY, summary, {"client_id": planned.client_id}, settings)
        # Every interval from the first start (the offset lines the interval up with it).
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        offset = (planned.starts_at - epoch) % planned.every
        spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=planned.every, offset=offset)], start_at=planned.starts_at
        )
        note = f"client summary every {planned.every}, due {planned.due_within} after each start"
    return Schedule(
        action=action,
        spec=spec,
        # A run still going when the next is due: the next is skipped (it would find nothing new).
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=note),
    )


async def ensure(
    client: Client, settings: Settings, client_id: str, onboarded: datetime, *, now: datetime | None = None
) -> list[str]:
    """Create the client's schedules (those that exist are resumed instead: a re-activated
    client); a month whose start has passed runs at once. Returns the schedule ids."""
    now = now or datetime.now(UTC)
    ids = []
    for planned in plan_schedules(client_id, onboarded, now, cadence(settings)):
        try:
            await client.create_schedule(
                planned.schedule_id,
                _schedule(planned, settings),
                trigger_immediately=planned.overdue,
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.CLIENT_ID, client_id)]),
            )
        except ScheduleAlreadyRunningError:
            await _resume(client.get_schedule_handle(planned.schedule_id), "the client was activated")
        ids.append(planned.schedule_id)
    return ids


async def _resume(handle: ScheduleHandle, note: str) -> None:
    if (await handle.describe()).schedule.state.paused:
        await handle.unpause(note=note)


async def client_schedule_ids(client: Client, client_id: str | None = None) -> list[str]:
    """Our schedules' ids, sorted: one client's (asked for by id, so one just created is found at
    once), or every client's (from Temporal's list, which may lag a second behind)."""
    if client_id is not None:
        return sorted([i for i in all_ids(client_id) if await _exists(client, i)])
    return sorted([entry.id async for entry in await client.list_schedules() if client_of(entry.id) is not None])


def all_ids(client_id: str) -> list[str]:
    """Every schedule id a client can have."""
    months = [make_id(client_id, ScheduleKind.DELIVERABLE, m.number) for m in deliverables.MONTHS]
    return [*months, make_id(client_id, ScheduleKind.SUMMARY)]


async def _exists(client: Client, schedule_id_: str) -> bool:
    try:
        await client.get_schedule_handle(schedule_id_).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def describe(client: Client, schedule_id: str) -> ScheduleInfo:
    if not schedule_id.startswith(PREFIX):
        raise UnknownSchedule(f"{schedule_id!r} is not a Wavelaunch schedule (their ids start with {PREFIX!r})")
    try:
        described = await client.get_schedule_handle(schedule_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise UnknownSchedule(f"no schedule {schedule_id!r}; see `wavelaunch schedule list`") from None
        raise
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    info = described.info
    return ScheduleInfo(
        schedule_id=schedule_id,
        client_id=client_of(schedule_id),
        workflow=action.workflow,
        paused=described.schedule.state.paused,
        note=described.schedule.state.note or "",
        next_runs=list(info.next_action_times[:3]),
        recent_runs=[(r.scheduled_at, getattr(r.action, "workflow_id", "")) for r in info.recent_actions[-5:]],
        running=[getattr(r, "workflow_id", "") for r in info.running_actions],
    )


async def pause(client: Client, schedule_ids: list[str], note: str) -> list[str]:
    """Pause each schedule (one missing is skipped); the ids paused."""
    done = []
    for schedule_id in schedule_ids:
        handle = client.get_schedule_handle(schedule_id)
        try:
            await handle.pause(note=note)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        done.append(schedule_id)
    return done


async def resume(client: Client, schedule_ids: list[str], note: str) -> list[str]:
    for schedule_id in schedule_ids:
        await describe(client, schedule_id)  # refuses an unknown id by name
        await client.get_schedule_handle(schedule_id).unpause(note=note)
    return schedule_ids


async def trigger(client: Client, schedule_id: str) -> None:
    """Run the schedule's action now (its deadline counts from now)."""
    await describe(client, schedule_id)
    await client.get_schedule_handle(schedule_id).trigger(overlap=ScheduleOverlapPolicy.SKIP)


async def remove(client: Client, schedule_ids: list[str]) -> list[str]:
    for schedule_id in schedule_ids:
        await describe(client, schedule_id)
        await client.get_schedule_handle(schedule_id).delete()
    return schedule_ids


async def pause_client(client: Client, client_id: str, note: str = "the client was archived") -> list[str]:
    """Pause every schedule of the client (`client.archived`); those it does not have are skipped."""
    return await pause(client, all_ids(client_id), note)
