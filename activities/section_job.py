"""A section request made concrete: its spec, client, routing tier, prompt, idempotency key,
ledger and writer, as every path that serves a section sees it (the section activities, the
reuse tiers, section groups chosen at prepare, and the bulk path through the Batch API)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.errors import ErrorType, final
from activities.ledger import Baseline, SectionLedger
from activities.writer import SectionWriter
from contracts.models import SectionRequest
from domain import catalogue
from domain.catalogue import deliverables
from domain.sections import DocumentKind, SectionSpec, Tier, UnknownSection
from storage import clients, documents
from storage.clients import StoredClient, UnknownClient
from tokenopt.budget import BudgetExceeded
from tokenopt.prompts import BuiltPrompt, build_section_prompt
from tokenopt.reads import reads


def idempotency_key(client_id: str, prompt: BuiltPrompt, kind: DocumentKind) -> str:
    """What makes two generations the same work: the same client, the document kind and exactly
    what the section reads (tokenopt.reads, with its values), not the client's version. A
    retried, replayed or repeated plan reuses the section; so does a later client version whose
    edits this section does not read, however long after, and a later deliverable month for a
    section that reads no month (Brand Context)."""
    raw = f"{client_id}|{kind}|{prompt.input_hash}"
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class SectionJob:
    """Everything one section's generation works with."""

    request: SectionRequest
    spec: SectionSpec
    client: StoredClient
    tier: Tier
    prompt: BuiltPrompt
    key: str
    ledger: SectionLedger
    writer: SectionWriter
    # Text the prompt carries after the client block (a deliverable's digest), or "".
    context: str = ""

    @property
    def kind(self) -> DocumentKind:
        return self.request.document_kind


class SectionJobs:
    """Builds the SectionJob of a request; the one place a section's prompt and key are made."""

    def __init__(self, deps: PlanDependencies):
        self.deps = deps

    async def job(self, request: SectionRequest, *, context: str | None = None) -> SectionJob:
        """What a section request works with; ``context`` given (prepare) instead of read by
        reference. Raises a final ApplicationError for an unknown client or section, or a
        prompt over its budget."""
        kind = request.document_kind
        try:
            spec = catalogue.spec(kind, request.section_key)
            document = [catalogue.spec(kind, k) for k in request.document_sections]
            client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        except UnknownSection as err:
            raise final(ErrorType.UNKNOWN_SECTION, err) from None
        except UnknownClient as err:
            raise final(ErrorType.UNKNOWN_CLIENT, err) from None
        context = await self._context(request) if context is None else self._reads_context(request, context)
        tier = reads(kind, spec, self.deps.techniques).tier
        try:
            prompt = self.prompt(client, spec, self.deps.router.model_for(tier), kind, context)
        except BudgetExceeded as err:
            raise final(ErrorType.BUDGET_EXCEEDED, err) from None
        key = idempotency_key(request.client_id, prompt, kind)
        if request.fresh:
            # A fresh answer is other work than the stored one; retries of this run still reuse it.
            key = hashlib.sha256(f"{key}|fresh|{activity.info().workflow_run_id}".encode()).hexdigest()
        ledger = SectionLedger(
            self.deps.pool,
            client_id=request.client_id,
            spec=spec,
            baseline=Baseline.for_section(client.record.wire(), spec, document, self.deps.naive_model),
            free_models=self.deps.free_models,
            kind=kind,
            spool=self.deps.spool,
            work=key,
        )
        writer = SectionWriter(
            self.deps.llm,
            self.deps.router,
            ledger,
            request.client_id,
            self.deps.guard,
            service_tier=request.service_tier,
            deadline=request.deadline,
            limiter=self.deps.limiter,
        )
        return SectionJob(request, spec, client, tier, prompt, key, ledger, writer, context)

    def prompt(
        self, client: StoredClient, spec: SectionSpec, model: str, kind: DocumentKind, context: str = ""
    ) -> BuiltPrompt:
        """The section's prompt for ``model`` (the writer asks again when it escalates)."""
        return build_section_prompt(
            client.record.wire(), spec, model=model, techniques=self.deps.techniques, context=context, kind=kind
        )

    def request_body(self, job: SectionJob) -> tuple[str, dict[str, Any]]:
        """The model and the chat request body a full generation of ``job`` would send."""
        model = self.deps.router.model_for(job.tier)
        return model, self.deps.llm.request_body(**job.writer.call_kwargs(job.spec, model, job.prompt.messages))

    @staticmethod
    def _reads_context(request: SectionRequest, context: str) -> str:
        """``context`` if the section reads one (deliverable kinds that build on earlier months)."""
        if request.document_kind is not DocumentKind.DELIVERABLE:
            return ""
        return context if deliverables.traits(deliverables.kind_of(request.section_key)).uses_digest else ""

    async def _context(self, request: SectionRequest) -> str:
        """The stored context a section reads: a deliverable month's digest of earlier months,
        only for the kinds that build on it (never the shared Brand Context)."""
        if request.context_ref is None or not self._reads_context(request, "x"):
            return ""
        text = await documents.digest_text(self.deps.pool, request.context_ref)
        if text is None:
            raise final(ErrorType.UNKNOWN_CONTEXT, LookupError(f"no stored digest {request.context_ref!r}"))
        return text
