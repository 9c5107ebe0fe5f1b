"""Small inputs and results that cross the workflow boundary: ids, versions and figures only.

Section texts and client records stay in Postgres (claim check), so histories stay small.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.sections import DocumentKind, Level


class PlanRequest(BaseModel):
    client_id: str
    level: Level = Level.COMPLETE
    # Narrow the level's sections to these.
    sections: list[str] | None = None
    # Write these sections afresh (no stored or cached answer), e.g. `plan regenerate --fields`.
    regenerate: list[str] = Field(default_factory=list)
    # Pin a snapshot; None means the client's current version when the plan starts.
    client_version: int | None = None


class PlanInputs(BaseModel):
    client_id: str
    client_version: int
    sections: list[str]


class SectionRequest(BaseModel):
    client_id: str
    client_version: int
    section_key: str
    # Every section of this document: the naive counterfactual is priced per document.
    document_sections: list[str]
    # Skip the stored and cached answers: the operator asked for a fresh one.
    fresh: bool = False
    # Which catalogue the section key belongs to (domain.sections or domain.deliverables).
    document_kind: DocumentKind = DocumentKind.BUSINESS_PLAN
    # Key of stored context (a deliverable month's digest of earlier months), read by the
    # sections whose kind uses it; the text itself never crosses the workflow boundary.
    context_ref: str | None = None


class SectionResult(BaseModel):
    section_key: str
    section_id: int
    model: str
    tier: str
    cache_tier: str = "none"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    baseline_tokens: int = 0
    baseline_cost: Decimal = Decimal(0)
    duration_ms: int = 0
    llm_calls: int = 0
    escalated: bool = False
    compression_steps: list[str] = Field(default_factory=list)


class AssembleRequest(BaseModel):
    client_id: str
    client_version: int
    level: Level
    workflow_id: str
    run_id: str
    sections: list[SectionResult]


class SectionChange(BaseModel):
    """A section that differs from the previous version of the document, and why."""

    section_key: str
    reason: str  # "new", "inputs changed" or "regenerated"
    fields: list[str] = Field(default_factory=list)


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
    DONE = "done"
    FAILED = "failed"


class SectionProgress(BaseModel):
    section_key: str
    status: SectionStatus = SectionStatus.PENDING
    model: str | None = None
    tokens: int = 0
    cost: Decimal = Decimal(0)
    cache_tier: str | None = None
    error: str | None = None


class DocumentProgress(BaseModel):
    """What a document workflow's ``progress`` query returns: each section's state and figures."""

    client_id: str
    status: str = "starting"
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


class PlanResult(BaseModel):
    client_id: str
    client_version: int
    level: Level
    document: DocumentRef
    sections: list[SectionResult]

    @property
    def total_tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.sections)

    @property
    def total_cost(self) -> Decimal:
        return sum((s.cost for s in self.sections), Decimal(0))


# -- deliverables ----------------------------------------------------------------------------
class DeliverableRequest(BaseModel):
    client_id: str
    month: int
    # Pin a snapshot; None means the client's current version when the month starts.
    client_version: int | None = None


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


class DeliverableResult(BaseModel):
    client_id: str
    client_version: int
    month: int
    documents: list[DeliverableDocumentRef]
    sections: list[SectionResult]

    @property
    def total_tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.sections)

    @property
    def total_cost(self) -> Decimal:
        return sum((s.cost for s in self.sections), Decimal(0))
