"""The registry of document kinds: every workflow the service runs, with its request model, its
workflow id, its search attributes, its progress query and whether `retry` may run it again.

The one list of them: the worker registers ``WORKFLOWS``, `replay` and the replay test replay
against it, the API and the CLI read progress through it, `retry` asks ``retryable``, and the
core's one start function (service/starts.py) starts any kind from its entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio.common import SearchAttributePair

from activities.deliverable import month_level
from contracts.models import BulkRequest, DeadlineBatchRequest, DeliverableRequest, PlanRequest, SummaryRequest
from domain.queues import Lane, lane_for
from domain.sections import DocumentKind
from workflows import search_attributes as sa
from workflows.bulk import BulkRegenerationWorkflow
from workflows.business_plan import BusinessPlanWorkflow
from workflows.deadline_batch import DeadlineBatchWorkflow
from workflows.deliverable import DeliverableWorkflow
from workflows.fanout import FollowsClientUpdates
from workflows.ids import bulk_workflow_id, deliverable_workflow_id, plan_workflow_id, summary_workflow_id
from workflows.summary import SummaryWorkflow

RequestT = TypeVar("RequestT", bound=BaseModel)

# The status a document shows in the Web UI from its start until its workflow sets another.
QUEUED = "queued"


@dataclass(frozen=True)
class Start(Generic[RequestT]):
    """How a kind is started from outside a workflow (the API, the CLI, the outbox, schedules)."""

    workflow_id: Callable[[RequestT], str]
    # Client id, document kind and level, for filtering in the Web UI (the status is added at start).
    search_attributes: Callable[[RequestT], list[SearchAttributePair[Any]]]
    memo: Callable[[RequestT], dict[str, Any]]
    lane: Callable[[RequestT], Lane]
    # The request field that takes WAVELAUNCH_BULK_POLL_SECONDS when the caller left it unset.
    poll_seconds_field: str | None = None


@dataclass(frozen=True)
class Kind(Generic[RequestT]):
    name: str
    workflow: type[Any]
    request: type[RequestT]
    # The workflow's @workflow.query method answering its progress.
    progress: Callable[..., Any]
    # None: started only by another workflow, as its child, under an id that workflow makes.
    start: Start[RequestT] | None
    # `retry` may start a failed run again with its original request.
    retryable: bool = False

    @property
    def workflow_type(self) -> str:
        """The name Temporal knows the workflow by (``describe().workflow_type``)."""
        # Set by @workflow.defn (read by name: in a class body the attribute would be mangled).
        return getattr(self.workflow, "__temporal_workflow_definition").name

    @property
    def follows_updates(self) -> bool:
        """The workflow takes the ``client_updated`` signal (a newer client snapshot)."""
        return issubclass(self.workflow, FollowsClientUpdates)


def _attributes(client_id: str | None, kind: DocumentKind, level: str) -> list[SearchAttributePair[Any]]:
    pairs: list[SearchAttributePair[Any]] = [] if client_id is None else [SearchAttributePair(sa.CLIENT_ID, client_id)]
    return [*pairs, SearchAttributePair(sa.DOCUMENT_KIND, kind.value), SearchAttributePair(sa.LEVEL, level)]


def summary_level(request: SummaryRequest) -> str:
    """How a summary run is labelled in the WavelaunchLevel search attribute."""
    return "threads+client" if request.include_client_summary else "threads"


PLAN: Kind[PlanRequest] = Kind(
    name="plan",
    workflow=BusinessPlanWorkflow,
    request=PlanRequest,
    progress=BusinessPlanWorkflow.progress,
    start=Start(
        workflow_id=lambda r: plan_workflow_id(r.client_id),
        search_attributes=lambda r: _attributes(r.client_id, DocumentKind.BUSINESS_PLAN, r.level.value),
        memo=lambda r: {"client_id": r.client_id, "level": r.level.value},
        lane=lambda r: lane_for(deadline=r.deadline),
    ),
    retryable=True,
)

DELIVERABLE: Kind[DeliverableRequest] = Kind(
    name="deliverable",
    workflow=DeliverableWorkflow,
    request=DeliverableRequest,
    progress=DeliverableWorkflow.progress,
    start=Start(
        workflow_id=lambda r: deliverable_workflow_id(r.client_id, r.month),
        search_attributes=lambda r: _attributes(r.client_id, DocumentKind.DELIVERABLE, month_level(r.month)),
        memo=lambda r: {"client_id": r.client_id, "month": r.month},
        lane=lambda r: lane_for(deadline=r.deadline, within=r.within),
        poll_seconds_field="batch_poll_seconds",
    ),
    retryable=True,
)

SUMMARY: Kind[SummaryRequest] = Kind(
    name="summary",
    workflow=SummaryWorkflow,
    request=SummaryRequest,
    progress=SummaryWorkflow.progress,
    start=Start(
        workflow_id=lambda r: summary_workflow_id(r.client_id),
        search_attributes=lambda r: _attributes(r.client_id, DocumentKind.SUMMARY, summary_level(r)),
        memo=lambda r: {"client_id": r.client_id, "threads": r.thread_ids or "all"},
        lane=lambda r: lane_for(deadline=r.deadline, within=r.within),
    ),
)

BULK: Kind[BulkRequest] = Kind(
    name="bulk",
    workflow=BulkRegenerationWorkflow,
    request=BulkRequest,
    progress=BulkRegenerationWorkflow.progress,
    start=Start(
        workflow_id=lambda r: bulk_workflow_id(r.client_ids, r.document_kind.value, r.level.value),
        # No client id: a bulk covers many clients; the plans it runs carry their own.
        search_attributes=lambda r: _attributes(None, r.document_kind, r.level.value),
        memo=lambda r: {"clients": r.client_ids or "all", "level": r.level.value, "bulk": True},
        lane=lambda r: Lane.BACKGROUND,
    ),
)

# A document's sections that can wait a day, through the Batch API: a child of the document's
# workflow (workflows/deadline_batch.py), never started from outside.
DEADLINE_BATCH: Kind[DeadlineBatchRequest] = Kind(
    name="deadline batch",
    workflow=DeadlineBatchWorkflow,
    request=DeadlineBatchRequest,
    progress=DeadlineBatchWorkflow.progress,
    start=None,
)

KINDS: tuple[Kind[Any], ...] = (PLAN, DELIVERABLE, SUMMARY, BULK, DEADLINE_BATCH)
# What a worker registers and a Replayer replays.
WORKFLOWS: list[type] = [kind.workflow for kind in KINDS]

_BY_TYPE = {kind.workflow_type: kind for kind in KINDS}
_BY_REQUEST: dict[type[BaseModel], Kind[Any]] = {kind.request: kind for kind in KINDS}


def by_workflow_type(workflow_type: str) -> Kind[Any] | None:
    """The kind of a workflow Temporal describes as ``workflow_type``; None for one not ours."""
    return _BY_TYPE.get(workflow_type)


def for_request(request: BaseModel) -> Kind[Any]:
    """The kind a request model starts (TypeError for a model that starts none)."""
    try:
        return _BY_REQUEST[type(request)]
    except KeyError:
        raise TypeError(f"{type(request).__name__} starts no document workflow") from None
