"""Which lane (task queue) work goes on: background for bulk, scheduled runs and deadlines a day
or more away; interactive otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.queues import Lane, lane_for
from service.settings import Settings

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_lanes() -> None:
    assert lane_for(now=NOW) is Lane.INTERACTIVE
    assert lane_for(deadline=NOW + timedelta(hours=6), now=NOW) is Lane.INTERACTIVE
    assert lane_for(deadline=NOW + timedelta(hours=23, minutes=59), now=NOW) is Lane.INTERACTIVE
    assert lane_for(deadline=NOW + timedelta(days=1), now=NOW) is Lane.BACKGROUND
    assert lane_for(within=timedelta(hours=6)) is Lane.INTERACTIVE
    assert lane_for(within=timedelta(days=7)) is Lane.BACKGROUND
    assert lane_for(scheduled=True) is Lane.BACKGROUND and lane_for(bulk=True) is Lane.BACKGROUND


def test_queue_names() -> None:
    settings = Settings(task_queue="wl")
    assert settings.queue_for(Lane.INTERACTIVE) == "wl"
    assert settings.queue_for(Lane.BACKGROUND) == "wl-background"
    assert Settings(task_queue="wl", background_task_queue="bg").queue_for(Lane.BACKGROUND) == "bg"
