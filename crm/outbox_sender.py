"""Sending the intake's accepted work to Temporal, off the request path.

The CRM waits 10 s, once. Starting a workflow takes ~11 ms on the dev server and its SQLite store
takes ~70 starts a second at most, while Postgres takes a thousand inserts a second; so the webhook
stores the start in the outbox (``storage.workflow_starts``), answers 202, and this starter sends
the rows to Temporal as fast as Temporal takes them: oldest first, concurrently across workflows,
in order within one workflow (a start, then a cancel, must not swap). The row is committed before
the 202, so an accepted event survives a crash; a row sent twice (crash between the start and the
mark) is harmless, since every start is idempotent (deterministic id, USE_EXISTING).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime
from typing import assert_never

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from contracts.models import DeliverableRequest, PlanRequest
from crm import outbox_commands
from crm.outbox_commands import (
    AnnounceUpdate,
    Cancel,
    EnsureSchedules,
    OutboxCommand,
    PauseSchedules,
    StartDeliverable,
    StartPlan,
)
from service import schedules, starts
from service.settings import Settings
from storage import workflow_starts
from storage.db import DB
from storage.workflow_starts import PendingStart
from workflows.ids import deliverable_workflow_id, plan_workflow_id

log = logging.getLogger(__name__)

BATCH = 200
# Starts in flight at once: enough to keep Temporal busy, few enough that a burst of starts does
# not starve the intake (Postgres, the dev server and the API share the machine's cores).
MAX_CONCURRENT_SENDS = 8
POLL_SECONDS = 1.0  # rows stored by another API process are picked up within this
MAX_BACKOFF_SECONDS = 30.0
# A start, signal or cancel takes milliseconds; one that hangs (Temporal stalled mid-call) must not
# hold the drain lock, and so every later row, forever: it fails, its row stays for the next pass.
SEND_TIMEOUT_SECONDS = 15.0
# One drainer at a time across API processes, so a workflow's rows are sent in order.
_DRAIN_LOCK = 0x57_41_56_45  # arbitrary, fixed


def _schedules_key(client_id: str) -> str:
    """One ordering key for a client's schedule rows: an archive's pause never overtakes the
    create before it, nor a re-activation's resume the pause."""
    return f"schedules-{client_id}"


class Starter:
    def __init__(self, pool: asyncpg.Pool, temporal: Client, settings: Settings):
        self.pool = pool
        self.temporal = temporal
        self.settings = settings
        self._wake = asyncio.Event()
        self._sending = asyncio.Semaphore(MAX_CONCURRENT_SENDS)

    # -- the intake's side: store, wake the loop ------------------------------------------
    # Given ``db``, a connection in a transaction, the rows join it and the caller calls wake()
    # once it commits; otherwise they are committed here and sent at once.
    async def plan(self, request: PlanRequest, *, announce_version: int | None = None, db: DB | None = None) -> None:
        command = StartPlan(request=request, announce_version=announce_version)
        await self._enqueue([(plan_workflow_id(request.client_id), command)], db)

    async def deliverable(self, request: DeliverableRequest, *, db: DB | None = None) -> None:
        workflow_id = deliverable_workflow_id(request.client_id, request.month)
        await self._enqueue([(workflow_id, StartDeliverable(request=request))], db)

    async def schedules(self, client_id: str, onboarded: datetime, *, db: DB | None = None) -> None:
        """Create the client's schedules (months, weekly summary), or resume them if they exist."""
        command = EnsureSchedules(client_id=client_id, onboarded=onboarded)
        await self._enqueue([(_schedules_key(client_id), command)], db)

    async def pause_schedules(self, client_id: str, *, db: DB | None = None) -> None:
        await self._enqueue([(_schedules_key(client_id), PauseSchedules(client_id=client_id))], db)

    async def announce(self, client_id: str, version: int, *, db: DB | None = None) -> None:
        """Tell the client's running plan and deliverables about ``version`` (they fold it in)."""
        command = AnnounceUpdate(client_id=client_id, version=version)
        await self._enqueue([(f"deliverables-{client_id}", command)], db)

    async def cancel(self, workflow_ids: list[str], *, db: DB | None = None) -> None:
        await self._enqueue([(workflow_id, Cancel()) for workflow_id in workflow_ids], db)

    async def _enqueue(self, commands: list[tuple[str, OutboxCommand]], db: DB | None) -> None:
        """Store each (ordering key, command): the key is the workflow the command acts on."""
        rows = [(key, *outbox_commands.stored(command)) for key, command in commands]
        await workflow_starts.enqueue(self.pool if db is None else db, rows)
        if db is None:
            self.wake()

    def wake(self) -> None:
        """Send what is stored now, without waiting for the next poll."""
        self._wake.set()

    # -- the sending side ------------------------------------------------------------------
    async def drain(self) -> tuple[int, int]:
        """One pass: send every pending row; returns (sent, failed). Another process draining
        (it holds the lock) makes this a no-op."""
        sent = failed = 0
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _DRAIN_LOCK):
                return 0, 0
            try:
                while rows := await workflow_starts.pending(conn, limit=BATCH):
                    by_workflow: dict[str, list[PendingStart]] = defaultdict(list)
                    for row in rows:
                        by_workflow[row.workflow_id].append(row)
                    outcomes = await asyncio.gather(*(self._send_in_order(group) for group in by_workflow.values()))
                    done = [start_id for ok, _ in outcomes for start_id in ok]
                    await workflow_starts.mark_done(self.pool, done)
                    sent += len(done)
                    failed += sum(bad for _, bad in outcomes)
                    if failed:
                        break  # Temporal is unwell: the loop backs off before the next pass
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _DRAIN_LOCK)
        return sent, failed

    async def _send_in_order(self, group: list[PendingStart]) -> tuple[list[int], int]:
        ok: list[int] = []
        for row in group:
            try:
                async with self._sending, asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await self._send(row)
            except Exception as err:  # noqa: BLE001 - any failure keeps the row for the next pass
                reason = (
                    f"no answer from Temporal within {SEND_TIMEOUT_SECONDS:.0f} s"
                    if isinstance(err, TimeoutError)
                    else f"{type(err).__name__}: {err}"
                )
                attempt = row.attempts + 1
                log.warning("could not send %s %s (attempt %d): %s", row.action, row.workflow_id, attempt, reason)
                await workflow_starts.mark_failed(self.pool, row.id, reason)
                return ok, 1  # the rest of this workflow's rows wait: their order matters
            ok.append(row.id)
        return ok, 0

    async def _send(self, row: PendingStart) -> None:
        # A row that does not parse raises MalformedCommand: it stays, with the reason, as a
        # failed send does (holding back its workflow's later rows: their order matters).
        command = outbox_commands.parse(row.action, row.request)
        match command:
            case StartPlan():
                await starts.start(
                    self.temporal, self.settings, command.request, announce_version=command.announce_version
                )
            case StartDeliverable():
                await starts.start(self.temporal, self.settings, command.request)
            case AnnounceUpdate():
                await starts.announce_update(self.temporal, command.client_id, command.version)
            case EnsureSchedules():
                await schedules.ensure(self.temporal, self.settings, command.client_id, command.onboarded)
            case PauseSchedules():
                await schedules.pause_client(self.temporal, command.client_id)
            case Cancel():
                try:
                    await self.temporal.get_workflow_handle(row.workflow_id).cancel()
                except RPCError:
                    pass  # not running (or never started): nothing to cancel
            case _:
                assert_never(command)

    async def run(self) -> None:
        """Drain now, then whenever the intake stores a row (or every POLL_SECONDS), backing off
        while Temporal refuses; until cancelled."""
        backoff = POLL_SECONDS / 2
        while True:
            self._wake.clear()
            try:
                _, failed = await self.drain()
            except Exception:  # noqa: BLE001 - the loop must outlive a bad pass (Postgres restarting, ...)
                log.exception("outbox drain failed; retrying")
                failed = 1
            if failed:  # Temporal refuses: wait it out, new rows wait too (they are stored)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                await asyncio.sleep(backoff)
                continue
            backoff = POLL_SECONDS
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
            # the wake fires, and the app's shutdown then waits on this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()

    async def idle(self, within: float = 60.0, every: float = 0.05) -> None:
        """Return once every stored row has been sent (tests and benchmarks wait on this); after
        ``within`` seconds, raise TimeoutError naming the oldest row still waiting and why."""
        deadline = asyncio.get_running_loop().time() + within
        while await workflow_starts.count_pending(self.pool):
            if asyncio.get_running_loop().time() > deadline:
                oldest = await workflow_starts.pending(self.pool, limit=1)
                raise TimeoutError(f"outbox not drained after {within:.0f} s; oldest waiting: {oldest}")
            self.wake()
            await asyncio.sleep(every)
