"""The answer spool: what a bought answer still owes Postgres, kept on the worker's local disk.

Between a model's answer and its writes (the usage row, the budget settlement, the section or
summary row) a worker may die, and while Postgres is down that window lasts as long as the
outage. So the answer and its rows are written here first (one small JSON file per piece of
work, replaced atomically and fsynced), and each item is struck off once Postgres has it. A
later attempt of the same work on this worker finds what is left: it writes the rows (idempotent
by ``call_id``), settles the reservations (idempotent) and stores the answer instead of buying
it again. Only what is added is written (and fsynced) before going on; an item struck off is
struck off in memory, and the file is deleted once nothing is owed, because a file that still
lists a paid item costs nothing more than doing that idempotent write again. Section text stays
out of Temporal's history (no heartbeat details): it lives here and in Postgres only. A spool
without a directory keeps nothing (in-memory retries only).
"""

from __future__ import annotations

import hashlib
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from storage.usage import UsageRecord

log = logging.getLogger(__name__)


class Settlement(BaseModel):
    """A call's budget reservation and what the call was billed (to settle it)."""

    reservation_id: int
    tokens: int
    cost: Decimal


class KeptAnswer(BaseModel):
    """A valid answer not yet in its home: its content and the figures the activity returns."""

    content: dict[str, Any]
    figures: dict[str, Any]


class Owed(BaseModel):
    """What one piece of work still owes Postgres."""

    rows: dict[str, UsageRecord] = Field(default_factory=dict)
    settlements: dict[str, Settlement] = Field(default_factory=dict)
    answer: KeptAnswer | None = None

    @property
    def empty(self) -> bool:
        return not self.rows and not self.settlements and self.answer is None

    def covers(self, other: Owed) -> bool:
        """Whether everything ``other`` owes is listed here too (a recovery from this would redo it)."""
        return (
            self.rows.keys() >= other.rows.keys()
            and self.settlements.keys() >= other.settlements.keys()
            and (other.answer is None or other.answer == self.answer)
        )


class Spool:
    def __init__(self, directory: Path | None = None):
        self.directory = directory
        # Per piece of work: what it owes now, and what its file lists (a superset of it).
        self._owed: dict[str, Owed] = {}
        self._listed: dict[str, Owed] = {}

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, work: str) -> Path:
        assert self.directory is not None
        return self.directory / (hashlib.sha256(work.encode()).hexdigest()[:40] + ".json")

    def read(self, work: str) -> Owed | None:
        """What ``work``'s file lists (it may still list paid items: redoing them is harmless),
        or None (nothing, or no spool)."""
        self._owed.pop(work, None)
        self._listed.pop(work, None)
        if self.directory is None:
            return None
        try:
            raw = self._path(work).read_text()
        except FileNotFoundError:
            return None
        try:
            return Owed.model_validate_json(raw)
        except ValueError as err:
            # A torn or foreign file: what it held cannot be recovered, so it is not kept.
            log.warning("answer spool %s unreadable (%s); ignored", self._path(work).name, err)
            return None

    def write(self, work: str, owed: Owed) -> None:
        """Replace what ``work`` owes (atomically, on disk before returning); empty: forgotten."""
        if self.directory is None:
            return
        path = self._path(work)
        if owed.empty:
            path.unlink(missing_ok=True)
            self._owed.pop(work, None)
            self._listed.pop(work, None)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(owed.model_dump_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._owed[work] = owed
        self._listed[work] = owed.model_copy(deep=True)  # the owed is struck off in place later

    def update(self, work: str, change: Any) -> None:
        """``change(owed)`` on what ``work`` owes (no await in between: one event loop). What it
        adds is on disk before this returns; what it strikes off is not rewritten (the file is
        deleted once nothing is owed)."""
        if self.directory is None:
            return
        if work not in self._owed:
            self._owed[work] = self.read(work) or Owed()
            self._listed[work] = self._owed[work].model_copy(deep=True)
        owed = self._owed[work]
        change(owed)
        if owed.empty or not self._listed[work].covers(owed):
            self.write(work, owed)

    def pending(self) -> int:
        """How many pieces of work owe something (for logs and tests)."""
        if self.directory is None or not self.directory.exists():
            return 0
        return sum(1 for _ in self.directory.glob("*.json"))
