"""Which OpenAI service tier a call goes on: the one decision, from the work's deadline.

Three tiers sell the same model's tokens: standard (the list price, answers now), flex (OpenAI
prices it at Batch API rates; synchronous but slower, and it may refuse with 429 "resource
unavailable") and the Batch API (the same rates, answered within 24 hours). Work that can wait
takes the cheapest tier that still meets its deadline:

- a document due a day and more away (the batch window plus a margin for the lines the batch
  does not answer) goes through the Batch API where the endpoint has one; the workflow waits for
  the batch only until ``batch_wait_until`` (the deadline less that margin), then writes what
  the batch did not answer directly;
- work due in half an hour and more goes on flex, falling back to standard when flex refuses
  or when the deadline comes close (a flex call is given only the time that leaves a standard
  call room to finish);
- anything else, and every interactive request (no deadline), is standard.

Pure: the workflow asks ``document_tier`` (with ``workflow.now()``), the section writer asks
``call_attempts``; nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class ServiceTier(StrEnum):
    STANDARD = "standard"
    FLEX = "flex"
    BATCH = "batch"

    @property
    def wire(self) -> str | None:
        """The chat request's ``service_tier`` value: only flex is asked for by name (standard is
        the API's default; a Batch API line carries none)."""
        return "flex" if self is ServiceTier.FLEX else None

    @classmethod
    def served(cls, response_tier: str | None) -> ServiceTier:
        """The tier a direct call was billed at, from the response's ``service_tier`` (OpenAI
        names the tier that served it: "flex", else "default"; a server that ignores the
        parameter names none, and bills standard)."""
        return cls.FLEX if response_tier == "flex" else cls.STANDARD


class Urgency(StrEnum):
    """How soon a person wants the work: the CLI's and the API's shorthand for a deadline."""

    NOW = "now"
    TODAY = "today"
    WEEK = "week"

    @property
    def window(self) -> timedelta | None:
        return _URGENCY_WINDOWS[self]


_URGENCY_WINDOWS: dict[Urgency, timedelta | None] = {
    Urgency.NOW: None,
    Urgency.TODAY: timedelta(hours=24),
    Urgency.WEEK: timedelta(days=7),
}

# OpenAI answers a batch within 24 hours; the margin leaves time to write the lines it did not
# answer the direct way.
BATCH_WINDOW = timedelta(hours=24)
BATCH_MARGIN = timedelta(hours=2)
# A batch cancelled at ``batch_wait_until`` is looked at for this long more, so the lines it
# answered before the cancel took hold are kept (and paid once), not written again.
BATCH_CANCEL_GRACE = timedelta(minutes=15)
# Less time than this left: flex's slower answers (and a possible refusal) are not worth the risk.
FLEX_MIN_LEFT = timedelta(minutes=30)
# OpenAI's advice for a flex request's timeout.
FLEX_CALL_MAX = timedelta(minutes=15)
# LLM error kinds (llm.errors) after which a flex call is made again on standard at once: flex
# had no capacity (429, "resource unavailable" or a rate limit) or its time ran out.
FLEX_FALLBACK_ERRORS = frozenset({"LLMRateLimited", "LLMTimeout"})


# The longest deadline a request may give: a deliverable month is due within the programme's weeks.
MAX_DEADLINE = timedelta(days=31)
_DURATION = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class BadDeadline(ValueError):
    """A ``--by`` duration (or ``by``/``urgency`` pair) that cannot be a deadline."""


def parse_duration(text: str) -> timedelta:
    """``90m``, ``6h``, ``3d``, ``1d12h``: how long the work may take; raises BadDeadline."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise BadDeadline(f"{text[:40]!r} is not a duration: use minutes, hours and days, e.g. 90m, 6h, 3d, 1d12h")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0) or total > MAX_DEADLINE:
        raise BadDeadline(f"a deadline must be more than 0 and at most {MAX_DEADLINE.days} days away")
    return total


def deadline_from(
    now: datetime, *, by: timedelta | str | None = None, urgency: Urgency | None = None
) -> datetime | None:
    """The absolute deadline for ``--by DURATION`` or ``--urgency``; None: interactive (standard).
    Raises BadDeadline for both at once or a bad duration."""
    if by is not None and urgency is not None:
        raise BadDeadline("give a deadline either as a duration (by) or as an urgency, not both")
    if isinstance(by, str):
        by = parse_duration(by)
    window = by if by is not None else (urgency.window if urgency is not None else None)
    return None if window is None else now + window


def document_tier(time_left: timedelta | None, *, batch_available: bool) -> ServiceTier:
    """The cheapest tier a document's sections can take and still be done in ``time_left``
    (None: no deadline, an interactive request)."""
    if time_left is None:
        return ServiceTier.STANDARD
    if batch_available and time_left >= BATCH_WINDOW + BATCH_MARGIN:
        return ServiceTier.BATCH
    if time_left >= FLEX_MIN_LEFT:
        return ServiceTier.FLEX
    return ServiceTier.STANDARD


def batch_wait_until(deadline: datetime) -> datetime:
    """When a document waiting on its Batch API batch stops waiting: the lines not answered by
    then are written directly (flex, then standard), in the margin left before ``deadline``."""
    return deadline - BATCH_MARGIN


@dataclass(frozen=True)
class TierAttempt:
    """One try of a call: on this tier, waited for at most ``timeout_seconds``."""

    tier: ServiceTier
    timeout_seconds: float


def call_attempts(
    allowed: ServiceTier,
    *,
    time_left: timedelta | None,
    flex_offered: bool,
    standard_seconds: float,
) -> list[TierAttempt]:
    """The tries of one direct call, in order: flex then standard when the work may wait and the
    model is sold on flex, else standard alone. ``standard_seconds`` is the call's usual timeout;
    flex gets at most FLEX_CALL_MAX and never so long that a standard call after it would end
    past the deadline."""
    standard = TierAttempt(ServiceTier.STANDARD, standard_seconds)
    if allowed is ServiceTier.STANDARD or not flex_offered:
        return [standard]
    flex_seconds = FLEX_CALL_MAX.total_seconds()
    if time_left is not None:
        flex_seconds = min(flex_seconds, time_left.total_seconds() - standard_seconds)
    if flex_seconds < standard_seconds:
        return [standard]  # the deadline is close: standard now
    return [TierAttempt(ServiceTier.FLEX, flex_seconds), standard]


def falls_back(error_kind: str) -> bool:
    """Whether a flex call that failed with ``error_kind`` is made again on standard at once."""
    return error_kind in FLEX_FALLBACK_ERRORS
