"""Small inputs and results that cross the workflow boundary: ids, versions and figures only.

Section texts and client records stay in Postgres (claim check), so histories stay small.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from domain.cache_policy import CacheTier
from domain.sections import DocumentKind, Level, Tier
from tokenopt.service_tiers import ServiceTier


class PlanRequest(BaseModel):
    client_id: str
    level: Level = Level.COMPLETE
    # Narrow the level's sections to these.
    sections: list[str] | None = None
    # Write these sections afresh (no stored or cached answer), e.g. `plan regenerate --fields`.
    regenerate: list[str] = Field(default_factory=list)
    # Pin a snapshot; None means the client's current version when the plan starts.
    client_version: int | None = None
    # Whether a section served from storage counts as saved against the naive way; a bulk
    # regeneration's plans say no: their sections were just written (and counted) by the batch.
    reuse_saves: bool = True
    # When the plan is wanted by (UTC); None: interactive, every call on standard. The workflow
    # picks each call's service tier from it (tokenopt.service_tiers).
    deadline: datetime | None = None


class PlanInputs(BaseModel):
    client_id: str
    client_version: int
    sections: list[str]
    # Section groups: sections written together in one call each (tokenopt.grouping), decided
    # at prepare. The field keeps its first name: it is in recorded histories.
    batches: list[list[str]] = Field(default_factory=list)


class SectionRequest(BaseModel):
    client_id: str
    client_version: int
    section_key: str
    # Every section of this document: the naive counterfactual is priced per document.
    document_sections: list[str]
    # Skip the stored and cached answers: the operator asked for a fresh one.
    fresh: bool = False
    # Which catalogue the section key belongs to (domain.catalogue).
    document_kind: DocumentKind = DocumentKind.BUSINESS_PLAN
    # Key of stored context (a deliverable month's digest of earlier months), read by the
    # sections whose kind uses it; the text itself never crosses the workflow boundary.
    context_ref: str | None = None
    # See PlanRequest.reuse_saves.
    reuse_saves: bool = True
    # The cheapest service tier the deadline allows, as the workflow chose it; the writer tries
    # flex first where allowed and the model is sold on it, standard when flex refuses or the
    # deadline comes close.
    service_tier: ServiceTier = ServiceTier.STANDARD
    deadline: datetime | None = None


class SectionGroupRequest(BaseModel):
    """Sections of one document written together in one call (a section group chosen at prepare)."""

    members: list[SectionRequest]


class CallFigures(BaseModel):
    """What one unit of work spent (a section, a summary), and what the naive way would have."""

    model: str
    # None: not known here (a bulk line whose figures an earlier attempt of the collect recorded).
    tier: Tier | None

    @field_validator("tier", mode="before")
    @classmethod
    def _unknown_tier(cls, value: object) -> object:
        return None if value == "" else value  # what such results carried before tiers were typed

    # The reuse tier that served it (NONE: written now).
    cache_tier: CacheTier = CacheTier.NONE
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    baseline_tokens: int = 0
    baseline_cost: Decimal = Decimal(0)
    duration_ms: int = 0
    # Calls it took part in (a section group's call counts once for each of its members).
    llm_calls: int = 0
    escalated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class SectionResult(CallFigures):
    section_key: str
    section_id: int
    # Members of the section group whose call wrote the section; 0 when it was written on its own
    # (named before groups were; the field is in recorded histories).
    batch_size: int = 0
    compression_steps: list[str] = Field(default_factory=list)


class SectionGroupResult(BaseModel):
    sections: list[SectionResult]


class AssembleRequest(BaseModel):
    client_id: str
    client_version: int
    level: Level
    workflow_id: str
    run_id: str
    sections: list[SectionResult]


class ChangeReason(StrEnum):
    NEW = "new"
    INPUTS_CHANGED = "inputs changed"
    REGENERATED = "regenerated"


class SectionChange(BaseModel):
    """A section that differs from the previous version of the document, and why."""

    section_key: str
    reason: ChangeReason
    fields: list[str] = Field(default_factory=list)


class DocumentFailure(BaseModel):
    """A document workflow run that failed, for the CRM (ids and the error's type only)."""

    client_id: str
    kind: DocumentKind
    workflow_id: str
    run_id: str
    month: int | None = None
    reason: str


class DocumentRef(BaseModel):
    document_id: int
    version: int
    markdown_chars: int
    changes: list[SectionChange] = Field(default_factory=list)


class SectionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    # Refused by a paused budget; waiting for `budget resume`.
    PAUSED = "paused"
    # Waiting on a durable timer for the provider's rate limit (the error says how long).
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


class SectionProgress(BaseModel):
    section_key: str
    status: SectionStatus = SectionStatus.PENDING
    model: str | None = None
    tokens: int = 0
    cost: Decimal = Decimal(0)
    cache_tier: CacheTier | None = None
    error: str | None = None


class DocumentStatus(StrEnum):
    """Where a document workflow (or the bulk run) is: its ``progress`` query and the Web UI's
    status search attribute show it."""

    STARTING = "starting"
    PREPARING = "preparing"
    GENERATING = "generating"
    SUMMARISING = "summarising"
    # A deadline document waiting on its Batch API batch.
    BATCHING = "batching"
    # Bulk: the batch is being sent, waited for, collected.
    SUBMITTING = "submitting"
    WAITING = "waiting"
    COLLECTING = "collecting"
    # Held by a paused budget.
    PAUSED = "paused"
    ASSEMBLING = "assembling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DocumentProgress(BaseModel):
    """What a document workflow's ``progress`` query returns: each section's state and figures."""

    client_id: str
    status: DocumentStatus = DocumentStatus.STARTING
    sections: list[SectionProgress] = Field(default_factory=list)

    def count(self, status: SectionStatus) -> int:
        return sum(1 for s in self.sections if s.status == status)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.sections)

    @property
    def cost(self) -> Decimal:
        return sum((s.cost for s in self.sections), Decimal(0))


class PlanProgress(DocumentProgress):
    level: Level


class SectionTotals:
    """What a document run spent, from its sections (mixed into the result models, which own
    the field: declared here it would move to the front of their JSON)."""

    if TYPE_CHECKING:
        sections: list[SectionResult]

    @property
    def total_tokens(self) -> int:
        return sum(s.total_tokens for s in self.sections)

    @property
    def total_cost(self) -> Decimal:
        return sum((s.cost for s in self.sections), Decimal(0))


class PlanResult(SectionTotals, BaseModel):
    client_id: str
    client_version: int
    level: Level
    document: DocumentRef
    sections: list[SectionResult]


# -- deliverables ----------------------------------------------------------------------------
class DeliverableRequest(BaseModel):
    client_id: str
    month: int
    # Pin a snapshot; None means the client's current version when the month starts.
    client_version: int | None = None
    # Write these sections afresh (no stored or cached answer), e.g. `deliverable regenerate --fields`.
    regenerate: list[str] = Field(default_factory=list)
    # See PlanRequest.deadline.
    deadline: datetime | None = None
    # A deadline counted from the run's start (a schedule's runs: their arguments are fixed, so
    # an absolute deadline could not move with each run); ``deadline`` wins when both are set.
    within: timedelta | None = None
    # A deadline a day and more away sends the month's sections through the Batch API: the
    # durable timer between two looks at that batch (WAVELAUNCH_BULK_POLL_SECONDS).
    batch_poll_seconds: int = Field(default=60, ge=1)


class DeliverableInputs(BaseModel):
    client_id: str
    client_version: int
    month: int
    # Every distinct section the month fans out, shared ones (Brand Context) first.
    shared_sections: list[str]
    sections: list[str]
    # document key -> its six section keys in reading order.
    documents: dict[str, list[str]]
    # The stored digest of earlier months (None for M1) and its size.
    digest_ref: str | None = None
    digest_tokens: int = 0
    # Section groups: sections written together in one call each (tokenopt.grouping), decided
    # at prepare. The field keeps its first name: it is in recorded histories.
    batches: list[list[str]] = Field(default_factory=list)


class DeliverableAssembleRequest(BaseModel):
    client_id: str
    client_version: int
    month: int
    workflow_id: str
    run_id: str
    documents: dict[str, list[str]]
    sections: list[SectionResult]


class DeliverableDocumentRef(BaseModel):
    document_key: str
    document_id: int
    version: int
    markdown_chars: int


class DeliverableProgress(DocumentProgress):
    month: int

    @property
    def level(self) -> str:
        """The month as the progress table labels it (like a plan's level)."""
        return f"m{self.month}"


class DeliverableResult(SectionTotals, BaseModel):
    client_id: str
    client_version: int
    month: int
    documents: list[DeliverableDocumentRef]
    sections: list[SectionResult]


# -- summaries -------------------------------------------------------------------------------
class SummaryRequest(BaseModel):
    client_id: str
    # None: every thread of the client.
    thread_ids: list[str] | None = None
    include_client_summary: bool = True
    # See PlanRequest.deadline and DeliverableRequest.within.
    deadline: datetime | None = None
    within: timedelta | None = None


class SummaryInputs(BaseModel):
    client_id: str
    client_version: int
    thread_ids: list[str]


class ThreadSummaryRequest(BaseModel):
    client_id: str
    thread_id: str
    # See SectionRequest.service_tier.
    service_tier: ServiceTier = ServiceTier.STANDARD
    deadline: datetime | None = None


class ClientSummaryRequest(BaseModel):
    client_id: str
    # Pin a snapshot; None means the client's current version.
    client_version: int | None = None
    # See SectionRequest.service_tier.
    service_tier: ServiceTier = ServiceTier.STANDARD
    deadline: datetime | None = None


class SummaryFigures(CallFigures):
    """What one summary activity spent (cache_tier "stored": nothing new since the last summary)."""

    summary_id: int
    version: int


class ThreadSummaryResult(SummaryFigures):
    thread_id: str
    # The summary covers the thread's messages up to this seq; new_messages of them were read now.
    through_seq: int
    new_messages: int = 0


class ClientSummaryResult(SummaryFigures):
    # The thread summaries it was written from.
    thread_summary_ids: list[int] = Field(default_factory=list)


class SummaryProgress(DocumentProgress):
    """Progress of a summary run: one row per thread (``thread:<id>``) and one for the client summary."""

    @property
    def level(self) -> str:
        return "summary"


class SummaryResult(BaseModel):
    client_id: str
    client_version: int
    threads: list[ThreadSummaryResult]
    client: ClientSummaryResult | None = None

    def _all(self) -> list[SummaryFigures]:
        return [*self.threads, *([self.client] if self.client else [])]

    @property
    def total_tokens(self) -> int:
        return sum(s.total_tokens for s in self._all())

    @property
    def total_cost(self) -> Decimal:
        return sum((s.cost for s in self._all()), Decimal(0))

    @property
    def baseline_tokens(self) -> int:
        return sum(s.baseline_tokens for s in self._all())

    @property
    def llm_calls(self) -> int:
        return sum(s.llm_calls for s in self._all())


# -- bulk regeneration (the Batch API) -------------------------------------------------------
class BulkRequest(BaseModel):
    """Regenerate many clients' documents at once, through the Batch API where the endpoint has one."""

    # None: every ACTIVE client, resolved by the prepare activity.
    client_ids: list[str] | None = None
    document_kind: DocumentKind = DocumentKind.BUSINESS_PLAN
    level: Level = Level.COMPLETE
    # Durable timer between two looks at the batch (OpenAI answers within 24 h, usually sooner).
    poll_seconds: int = Field(default=60, ge=1)
    # Start each client's plan afterwards (it then finds every section stored).
    assemble: bool = True
    # Polls before the workflow continues as new, so its history stays short.
    max_polls_per_run: int = Field(default=500, ge=1)
    # Set when the workflow continued as new while waiting for its batch.
    resume: BulkResume | None = None


class BulkMode(StrEnum):
    """How a set of sections is generated: through the Batch API, or by per-section calls (an
    endpoint without the Batch API, or a local model)."""

    BATCH = "batch"
    DIRECT = "direct"


class BulkClient(BaseModel):
    client_id: str
    client_version: int


class BulkPrepared(BaseModel):
    """The request set stored in Postgres (by reference) and its counts, never the requests."""

    ref: str
    mode: BulkMode
    clients: list[BulkClient]
    to_generate: int
    reused: int


class BatchState(BaseModel):
    batch_id: str
    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    terminal: bool = False
    errors: list[str] = Field(default_factory=list)


class BulkCollected(BaseModel):
    """What a finished batch brought: sections stored, lines that must go the direct way."""

    stored: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    baseline_cost: Decimal = Decimal(0)


class BulkResume(BaseModel):
    prepared: BulkPrepared
    batch: BatchState
    polls: int = 0


class BulkProgress(BaseModel):
    """What the bulk workflow's ``progress`` query returns."""

    status: DocumentStatus = DocumentStatus.STARTING
    level: Level = Level.COMPLETE
    mode: BulkMode | None = None
    clients: int = 0
    to_generate: int = 0
    reused: int = 0
    batch_id: str | None = None
    batch_status: str | None = None
    batch_completed: int = 0
    batch_failed: int = 0
    polls: int = 0
    stored_from_batch: int = 0
    batch_cost: Decimal = Decimal(0)
    fallback: int = 0
    fallback_done: int = 0
    direct_cost: Decimal = Decimal(0)
    # client id -> the plan document version written for it.
    documents: dict[str, int] = Field(default_factory=dict)
    failed: list[str] = Field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        return self.batch_cost + self.direct_cost


class BulkResult(BaseModel):
    ref: str
    mode: BulkMode
    batch_id: str | None
    clients: list[str]
    to_generate: int
    reused: int
    stored_from_batch: int
    fallback: int
    batch_cost: Decimal
    direct_cost: Decimal
    documents: dict[str, int]


class BatchSections(BaseModel):
    """A collected batch's totals and, per section stored from it, its figures as a direct
    generation would report them (a document's batch only: a bulk's would be too many)."""

    collected: BulkCollected
    sections: list[SectionResult] = Field(default_factory=list)


class DeadlineBatchRequest(BaseModel):
    """The sections of one document that can wait a day, for one Batch API batch
    (DeadlineBatchWorkflow, a child of the document's workflow)."""

    client_id: str
    # How the set is labelled in bulk_requests.level (e.g. "m3").
    label: str
    document_kind: DocumentKind
    # Exactly the requests the document would make; those the stored, exact, semantic or patch
    # tier can serve are left out at prepare.
    sections: list[SectionRequest]
    # Stop waiting for the batch then (tokenopt.service_tiers.batch_wait_until): whatever it has
    # not answered is written directly before the deadline.
    wait_until: datetime
    poll_seconds: int = Field(default=60, ge=1)
    max_polls_per_run: int = Field(default=500, ge=1)
    # Set when the workflow continued as new while waiting for its batch.
    resume: BulkResume | None = None


class DeadlineBatchResult(BaseModel):
    ref: str | None = None
    mode: BulkMode | None = None
    batch_id: str | None = None
    batch_status: str | None = None
    to_generate: int = 0
    polls: int = 0
    # The batch was still running at ``wait_until`` and was cancelled.
    cut_short: bool = False
    # The sections stored from the batch; every other section is the document's to write.
    sections: list[SectionResult] = Field(default_factory=list)
    cost: Decimal = Decimal(0)


BulkRequest.model_rebuild()
DeadlineBatchRequest.model_rebuild()
