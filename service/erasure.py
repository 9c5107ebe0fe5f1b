"""Erasing a client: end its workflows, then remove its data (storage.erasure) in one
transaction. What the CLI (`clients erase`), the REST API and the retention sweep share.

Workflow histories stay in Temporal: they carry ids, versions and figures, never a client's
record, messages or texts (workflows/models.py), so there is nothing personal in them to erase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from domain.catalogue import deliverables
from storage import erasure
from storage.clients import UnknownClient
from storage.db import DB
from storage.erasure import Erased
from workflows import search_attributes as sa
from workflows.ids import deliverable_workflow_id, plan_workflow_id, summary_workflow_id

log = logging.getLogger(__name__)

# How often the API looks for clients whose retention period after client.archived has passed.
RETENTION_SWEEP_SECONDS = 3600.0


@dataclass(frozen=True)
class Erasure:
    client_id: str
    erased: Erased
    workflows_ended: list[str]


def client_workflow_ids(client_id: str) -> list[str]:
    """Every workflow id the client's documents run under."""
    return [
        plan_workflow_id(client_id),
        *(deliverable_workflow_id(client_id, m.number) for m in deliverables.months()),
        summary_workflow_id(client_id),
    ]


async def end_workflows(temporal: Client, client_id: str, workflow_ids: list[str]) -> list[str]:
    """Terminate the client's running workflows (those named, and any other the Web UI's client
    search attribute finds); the ids ended."""
    found = set(workflow_ids)
    with contextlib.suppress(RPCError):
        query = f"{sa.CLIENT_ID.name} = '{client_id}' AND ExecutionStatus = 'Running'"
        found |= {w.id async for w in temporal.list_workflows(query)}
    ended = []
    for workflow_id in sorted(found):
        handle = temporal.get_workflow_handle(workflow_id)
        try:
            described = await handle.describe()
            if described.status != WorkflowExecutionStatus.RUNNING:
                continue
            await handle.terminate(reason="client erased")
            ended.append(workflow_id)
        except RPCError:
            continue  # never started, or finished between the look and the terminate
    return ended


async def erase_client(
    db: DB, temporal: Client, client_id: str, *, legal_hold: bool = False, reason: str = "operator"
) -> Erasure:
    """End the client's workflows, then erase its data; UnknownClient when there was nothing."""
    await erasure.purge_tombstones(db)
    ids = client_workflow_ids(client_id)
    ended = await end_workflows(temporal, client_id, ids)
    erased = await erasure.erase(db, client_id, ids, legal_hold=legal_hold, reason=reason)
    if not erased.removed:
        raise UnknownClient(client_id)
    # No client id in the log line: the anonymous id and the figures say what happened.
    log.info("client erased as %s (%s): %d rows, %d workflows ended", erased.anon_id, reason, erased.total, len(ended))
    return Erasure(client_id, erased, ended)


async def erase_archived(db: DB, temporal: Client, *, days: float, legal_hold: bool) -> list[Erasure]:
    """Erase every client archived more than ``days`` ago (the retention period)."""
    done = []
    for client_id in await erasure.archived_before(db, days):
        done.append(await erase_client(db, temporal, client_id, legal_hold=legal_hold, reason="retention"))
    return done


async def housekeeping_loop(db: DB, temporal: Client, *, days: float | None, legal_hold: bool) -> None:
    """Every hour, until cancelled: forget the client ids of erasures past their tombstone time,
    and (``days`` set) erase the clients past their retention period after client.archived."""
    while True:
        try:
            await erasure.purge_tombstones(db)
            if days is not None:
                await erase_archived(db, temporal, days=days, legal_hold=legal_hold)
        except Exception:  # noqa: BLE001 - the sweep must outlive a bad pass
            log.exception("retention sweep failed; trying again later")
        await asyncio.sleep(RETENTION_SWEEP_SECONDS)
