"""Which task queue a piece of work goes on: interactive work (someone is waiting) on the main
queue, background work (a bulk regeneration, a scheduled run, a deadline a day or more away) on
its own queue, served by its own activity slots, so it can never sit in front of interactive
work however much of it there is. The one place this is decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

# A deadline at least this far away is background work.
BACKGROUND_AFTER = timedelta(days=1)


class Lane(StrEnum):
    INTERACTIVE = "interactive"
    BACKGROUND = "background"


def lane_for(
    *,
    deadline: datetime | None = None,
    within: timedelta | None = None,
    scheduled: bool = False,
    bulk: bool = False,
    now: datetime | None = None,
) -> Lane:
    """Background for bulk work, scheduled runs and deadlines a day or more away; else interactive."""
    if bulk or scheduled:
        return Lane.BACKGROUND
    if within is not None and within >= BACKGROUND_AFTER:
        return Lane.BACKGROUND
    if deadline is not None and deadline - (now or datetime.now(UTC)) >= BACKGROUND_AFTER:
        return Lane.BACKGROUND
    return Lane.INTERACTIVE
