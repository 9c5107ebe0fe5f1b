"""domain.schedules: which schedules a client gets, from its onboarding date and the cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.schedules import Cadence, ScheduleKind, client_of, plan_schedules, schedule_id

ONBOARDED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_new_client_gets_eight_months_and_the_weekly_summary() -> None:
    planned = plan_schedules("c1", ONBOARDED, ONBOARDED, Cadence())
    months = [p for p in planned if p.kind is ScheduleKind.DELIVERABLE]
    assert [p.month for p in months] == list(range(1, 9))
    assert [p.starts_at for p in months] == [ONBOARDED + 30 * DAY * i for i in range(8)]
    assert all(p.every is None and p.due_within == 7 * DAY for p in months)
    assert [p.overdue for p in months] == [True] + [False] * 7  # M1 starts at onboarding
    [summary] = [p for p in planned if p.kind is ScheduleKind.SUMMARY]
    assert (summary.starts_at, summary.every, summary.due_within) == (ONBOARDED + 7 * DAY, 7 * DAY, timedelta(hours=6))
    assert summary.schedule_id == "wl-summary-c1"
    assert months[1].schedule_id == "wl-deliverable-c1-m2"


def test_a_client_activated_later_gets_its_current_month_and_those_to_come() -> None:
    now = ONBOARDED + 75 * DAY  # in month 3 (days 60-90)
    months = [p for p in plan_schedules("c1", ONBOARDED, now, Cadence()) if p.month]
    assert [p.month for p in months] == [3, 4, 5, 6, 7, 8]
    assert [p.overdue for p in months][:2] == [True, False]


def test_after_the_programme_only_the_summary_remains() -> None:
    planned = plan_schedules("c1", ONBOARDED, ONBOARDED + 400 * DAY, Cadence())
    assert [p.kind for p in planned] == [ScheduleKind.SUMMARY]


def test_the_cadence_is_a_setting() -> None:
    cadence = Cadence(month_every=14 * DAY, month_due=3 * DAY, summary_every=DAY, summary_due=timedelta(hours=2))
    planned = plan_schedules("c1", ONBOARDED, ONBOARDED, cadence)
    assert planned[7].starts_at == ONBOARDED + 7 * 14 * DAY
    assert planned[-1].every == DAY
    with pytest.raises(ValueError, match="month every"):
        Cadence(month_every=timedelta(0))


def test_ids_name_their_client() -> None:
    assert client_of(schedule_id("a-b-m1", ScheduleKind.DELIVERABLE, 3)) == "a-b-m1"
    assert client_of(schedule_id("x_1", ScheduleKind.SUMMARY)) == "x_1"
    assert client_of("someone-elses") is None
    assert client_of("wl-deliverable-c1-mX") is None
