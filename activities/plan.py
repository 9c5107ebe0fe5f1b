"""Business-plan activities: every side effect of a plan (Postgres, the LLM) happens here.

A section is served by the first tier that can, cheapest first:
1. stored: this client version's section was already written (a retry, a replay, a repeat);
2. exact: the same request (same inputs, model and versions, same client) within its TTL;
3. semantic: a near-identical request of the same client and section, revised by a cheap model
   (never when numbers, dates, names or negations differ);
4. a full generation, whose answer then feeds the tiers above.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.alerts import AlertConfig, AlertNotifier
from activities.budget_guard import BudgetGuard
from activities.ledger import Baseline, SectionLedger
from activities.section_cache import CacheConfig, SectionCache
from activities.writer import OutputRejected, SectionWriter, Written
from domain import deliverables
from domain.cache_policy import policy
from domain.outputs import in_schema_order
from domain.render import render_document
from domain.sections import DocumentKind, SectionSpec, UnknownSection, resolve_sections, section
from domain.templates import BUSINESS_PLAN_TEMPLATES, fill
from llm.client import LLMClient
from storage import clients, documents, sections
from storage.cache import CacheEntry
from storage.clients import StoredClient, UnknownClient, diff_fields
from tokenopt.budget import BudgetExceeded
from tokenopt.cache_keys import exact_key
from tokenopt.prompts import PROMPT_VERSION, BuiltPrompt, build_revision_prompt, build_section_prompt
from tokenopt.routing import ModelRouter, Tier, tier_for
from tokenopt.semantic import changed_fields, facts_match, inputs_text
from tokenopt.techniques import Technique, Techniques
from workflows.models import (
    AssembleRequest,
    DocumentRef,
    PlanInputs,
    PlanRequest,
    SectionChange,
    SectionRequest,
    SectionResult,
)
from workflows.shared import HEARTBEAT_EVERY_SECONDS

log = logging.getLogger(__name__)
KIND = DocumentKind.BUSINESS_PLAN


@dataclass
class PlanDependencies:
    pool: asyncpg.Pool
    llm: LLMClient
    router: ModelRouter
    naive_model: str
    free_models: frozenset[str] = field(default_factory=frozenset)
    techniques: Techniques = field(default_factory=Techniques)
    cache: CacheConfig = field(default_factory=CacheConfig)
    # Budgets and alerts; unset: budgets enforced, alerts logged only (no webhook).
    guard: BudgetGuard = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = BudgetGuard(self.pool, AlertNotifier(self.pool, AlertConfig()), free_models=self.free_models)

    async def after_document(self) -> None:
        """Checks made once a document is assembled (the cache hit rate); never fail the document."""
        try:
            await self.guard.notifier.check_cache_hit_rate()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            log.warning("cache hit rate not checked: %s", err)


def idempotency_key(client_id: str, client_version: int, prompt: BuiltPrompt, kind: DocumentKind = KIND) -> str:
    """What makes two generations the same work for durability: the same client version, the
    document kind and exactly what the section reads. A retried, replayed or repeated plan
    reuses the section; so does a later deliverable month for a section that reads no month
    (Brand Context)."""
    raw = f"{client_id}|v{client_version}|{kind}|{prompt.input_hash}"
    return hashlib.sha256(raw.encode()).hexdigest()


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a long call runs, so a dead worker is noticed within the heartbeat timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _final(kind: str, err: Exception) -> ApplicationError:
    return ApplicationError(str(err), type=kind, non_retryable=True)


def section_spec(kind: DocumentKind, key: str) -> SectionSpec:
    """A section key's spec in its document kind's catalogue; raises UnknownSection."""
    if kind is DocumentKind.DELIVERABLE:
        return deliverables.section_spec(key)
    return section(key)


@dataclass
class _Job:
    """Everything one generate_section call works with."""

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


class PlanActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        self.cache = SectionCache(deps.pool, deps.llm, deps.cache)
        self.guard = deps.guard

    # -- prepare -------------------------------------------------------------------------
    @activity.defn
    async def prepare_plan(self, request: PlanRequest) -> PlanInputs:
        """Check the client and the sections before any LLM call is made."""
        try:
            stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
            specs = resolve_sections(request.level, request.sections)
        except UnknownClient as err:
            raise _final("UnknownClient", err) from None
        except UnknownSection as err:
            raise _final("UnknownSection", err) from None
        return PlanInputs(client_id=request.client_id, client_version=stored.version, sections=[s.key for s in specs])

    # -- generate --------------------------------------------------------------------------
    @activity.defn
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        """Serve the section from the cheapest tier that can, generating it only if none can."""
        job = await self._job(request)
        if request.fresh:
            async with _heartbeating():
                return (await self._generate(job))[0]
        if self._on(Technique.REUSE):
            existing = await sections.find(self.deps.pool, job.key)
            if existing is not None:
                saved = await job.ledger.hit(existing.model, "stored", job.key)
                return self._served(job, existing.id, existing.model, "stored", saved)

        async with _heartbeating():
            rules = policy(job.kind, job.spec.key)
            exact_on = self._on(Technique.EXACT_CACHE) and rules.cacheable
            # The semantic tier compares client fields only; a section reading a context (earlier
            # months) must not be served from an answer written on another context.
            semantic_on = self._on(Technique.SEMANTIC_CACHE) and rules.cacheable and rules.semantic and not job.context
            if not (exact_on or semantic_on):
                return (await self._generate(job))[0]
            ekey = self._exact_key(job)
            async with self.cache.single_flight(ekey) as db:
                if exact_on and (hit := await self.cache.exact(db, ekey, job.spec)) is not None:
                    section_id = await self._store(job, hit.content, hit.model)
                    saved = await job.ledger.hit(hit.model, "exact", ekey)
                    return self._served(job, section_id, hit.model, "exact", saved)
                found, vector = (
                    await self.cache.similar(db, request.client_id, job.kind, job.spec, job.prompt.inputs, job.ledger)
                    if semantic_on
                    else (None, None)
                )
                written = await self._semantic(job, *found) if found else None
                if written is None:
                    result, content = await self._generate(job)
                else:
                    result, content = written
                await self.cache.put(
                    db,
                    key=ekey,
                    client_id=request.client_id,
                    kind=job.kind,
                    spec=job.spec,
                    prompt_version=PROMPT_VERSION,
                    section_id=result.section_id,
                    content=content,
                    inputs=job.prompt.inputs,
                    model=result.model,
                    completion_tokens=result.completion_tokens,
                    cost=result.cost,
                    embedding=vector,
                )
                return result

    async def _job(self, request: SectionRequest) -> _Job:
        kind = request.document_kind
        try:
            spec = section_spec(kind, request.section_key)
            document = [section_spec(kind, k) for k in request.document_sections]
            client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        except UnknownSection as err:
            raise _final("UnknownSection", err) from None
        except UnknownClient as err:
            raise _final("UnknownClient", err) from None
        context = await self._context(request)
        tier = tier_for(spec.key) if self._on(Technique.ROUTING) else Tier.PREMIUM
        try:
            prompt = self._prompt(client, spec, self.deps.router.model_for(tier), kind, context)
        except BudgetExceeded as err:
            raise _final("BudgetExceeded", err) from None
        ledger = SectionLedger(
            self.deps.pool,
            client_id=request.client_id,
            spec=spec,
            baseline=Baseline.for_section(client.record.wire(), spec, document, self.deps.naive_model),
            free_models=self.deps.free_models,
            kind=kind,
        )
        writer = SectionWriter(self.deps.llm, self.deps.router, ledger, request.client_id, self.guard)
        key = idempotency_key(request.client_id, request.client_version, prompt, kind)
        if request.fresh:
            # A fresh answer is other work than the stored one; retries of this run still reuse it.
            key = hashlib.sha256(f"{key}|fresh|{activity.info().workflow_run_id}".encode()).hexdigest()
        return _Job(request, spec, client, tier, prompt, key, ledger, writer, context)

    async def _context(self, request: SectionRequest) -> str:
        """The stored context a section reads: a deliverable month's digest of earlier months,
        only for the kinds that build on it (never the shared Brand Context)."""
        if request.context_ref is None or request.document_kind is not DocumentKind.DELIVERABLE:
            return ""
        if not deliverables.traits(deliverables.kind_of(request.section_key)).uses_digest:
            return ""
        text = await documents.digest_text(self.deps.pool, request.context_ref)
        if text is None:
            raise _final("UnknownContext", LookupError(f"no stored digest {request.context_ref!r}"))
        return text

    def _on(self, technique: Technique) -> bool:
        return self.deps.techniques.on(technique)

    def _prompt(
        self, client: StoredClient, spec: SectionSpec, model: str, kind: DocumentKind = KIND, context: str = ""
    ) -> BuiltPrompt:
        return build_section_prompt(
            client.record.wire(), spec, model=model, techniques=self.deps.techniques, context=context, kind=kind
        )

    def _exact_key(self, job: _Job) -> str:
        return exact_key(
            tenant=job.request.client_id,
            document_kind=job.kind.value,
            section_key=job.spec.key,
            messages=job.prompt.messages,
            model=self.deps.router.model_for(job.tier),
            temperature=None,
            max_tokens=job.spec.target_tokens * 2,
            schema_version=job.spec.schema_version,
            prompt_version=PROMPT_VERSION,
        )

    async def _generate(self, job: _Job) -> tuple[SectionResult, dict[str, Any]]:
        def messages_for(model: str) -> tuple[list[dict[str, str]], list[str]]:
            prompt = self._prompt(job.client, job.spec, model, job.kind, job.context)
            return prompt.messages, list(prompt.compression_steps)

        try:
            written = await job.writer.write(
                job.spec, job.tier, messages_for, operation="generate_section", cache_key=job.key
            )
        except OutputRejected as err:
            raise _final("InvalidModelOutput", err) from None
        return await self._finish(job, written)

    async def _semantic(
        self, job: _Job, entry: CacheEntry, similarity: float
    ) -> tuple[SectionResult, dict[str, Any]] | None:
        """A near-identical earlier answer of this client and section, revised by the economy
        model (or served as is when nothing the section reads changed). None: generate in full."""
        if not facts_match(inputs_text(entry.inputs), inputs_text(job.prompt.inputs)):
            log.debug("semantic candidate for %s rejected: facts differ (similarity %.3f)", job.spec.key, similarity)
            return None
        delta = changed_fields(entry.inputs, job.prompt.inputs)
        if not entry.stale and not set(delta) & set(job.spec.fields):
            section_id = await self._store(job, entry.content, entry.model)
            saved = await job.ledger.hit(entry.model, "semantic", entry.key)
            return self._served(job, section_id, entry.model, "semantic", saved), entry.content

        def messages_for(model: str) -> tuple[list[dict[str, str]], list[str]]:
            return build_revision_prompt(job.spec, entry.content, delta, model=model, kind=job.kind).messages, []

        try:
            written = await job.writer.write(
                job.spec,
                Tier.ECONOMY,
                messages_for,
                operation="revise_section",
                cache_tier="semantic",
                cache_key=entry.key,
                attempts=1,
            )
        except OutputRejected:
            return None  # a failed revision falls back to a full generation
        written.result.cache_tier = "semantic"
        return await self._finish(job, written)

    async def _finish(self, job: _Job, written: Written) -> tuple[SectionResult, dict[str, Any]]:
        written.result.section_id = await self._store(job, written.content, written.result.model)
        return written.result, written.content

    async def _store(self, job: _Job, content: dict[str, Any], model: str) -> int:
        return await sections.store(
            self.deps.pool,
            idempotency_key=job.key,
            client_id=job.request.client_id,
            client_version=job.request.client_version,
            document_kind=job.kind.value,
            section_key=job.spec.key,
            schema_version=job.spec.schema_version,
            prompt_version=PROMPT_VERSION,
            model=model,
            content=content,
        )

    def _served(self, job: _Job, section_id: int, model: str, cache_tier: str, baseline_cost: Any) -> SectionResult:
        return SectionResult(
            section_key=job.spec.key,
            section_id=section_id,
            model=model,
            tier=job.tier.value,
            cache_tier=cache_tier,
            baseline_tokens=job.ledger.baseline.prompt_tokens + job.spec.target_tokens,
            baseline_cost=baseline_cost,
        )

    async def _template(self, spec: SectionSpec, client_id: str) -> dict[str, Any]:
        """Client-independent boilerplate: written once per template version (one call, on the
        cheapest model), then served from the template tier to every client."""
        model = self.deps.router.model_for(Tier.ECONOMY)
        key = hashlib.sha256(
            f"template|{KIND}|{spec.key}|v{spec.schema_version}|p{PROMPT_VERSION}|{model}".encode()
        ).hexdigest()
        ledger = SectionLedger(
            self.deps.pool,
            client_id=client_id,
            spec=spec,
            baseline=Baseline(0, self.deps.naive_model),
            free_models=self.deps.free_models,
        )
        async with self.cache.single_flight(key) as db:
            if (hit := await self.cache.exact(db, key, spec)) is not None:
                await ledger.hit(hit.model, "template", key, counterfactual=False)
                return hit.content
            writer = SectionWriter(self.deps.llm, self.deps.router, ledger, client_id, self.guard)
            try:
                written = await writer.write(
                    spec,
                    Tier.ECONOMY,
                    lambda m: (build_section_prompt({}, spec, model=m).messages, []),
                    operation="generate_template",
                    cache_key=key,
                )
            except OutputRejected as err:
                raise _final("InvalidModelOutput", err) from None
            await self.cache.put(
                db,
                key=key,
                client_id=None,
                kind=KIND,
                spec=spec,
                prompt_version=PROMPT_VERSION,
                section_id=None,
                content=written.content,
                inputs={},
                model=written.result.model,
                completion_tokens=written.result.completion_tokens,
                cost=written.result.cost,
                embedding=None,
            )
            return written.content

    # -- assemble --------------------------------------------------------------------------
    @activity.defn
    async def assemble_document(self, request: AssembleRequest) -> DocumentRef:
        """Store a new document version from the generated sections, rendered as Markdown."""
        ids = [s.section_id for s in request.sections]
        stored_sections = await sections.get_many(self.deps.pool, ids)
        client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        title = f"Business Plan: {client.record.brand_name or client.record.full_name}"
        # Sections arrive in catalogue order (resolve_sections), which is the reading order.
        ordered = [(section(s.section_key), stored_sections[s.section_id]) for s in request.sections]
        parts = [(spec.title, in_schema_order(spec.key, stored.content)) for spec, stored in ordered]
        for spec in BUSINESS_PLAN_TEMPLATES:
            content = await self._template(spec, request.client_id)
            parts.append((spec.title, fill(content, client.record.wire())))
        markdown = render_document(title, parts)
        changes = await self._changes(request, client, {spec.key: stored for spec, stored in ordered})
        document = await documents.store(
            self.deps.pool,
            client_id=request.client_id,
            kind=KIND.value,
            level=request.level.value,
            client_version=request.client_version,
            workflow_id=request.workflow_id,
            run_id=request.run_id,
            section_ids=[stored.id for _, stored in ordered],
            markdown=markdown,
            changes=[c.model_dump() for c in changes],
        )
        await self.deps.after_document()
        return DocumentRef(
            document_id=document.id, version=document.version, markdown_chars=len(markdown), changes=changes
        )

    async def _changes(
        self, request: AssembleRequest, client: StoredClient, current: dict[str, sections.StoredSection]
    ) -> list[SectionChange]:
        """What differs from the previous version of this document, and which fields caused it."""
        # The version before this run's (a retried assemble must not compare with itself).
        previous = await documents.latest(
            self.deps.pool, request.client_id, KIND.value, excluding_run=(request.workflow_id, request.run_id)
        )
        if previous is None:
            return [SectionChange(section_key=k, reason="new") for k in current]
        old_sections = await sections.get_many(self.deps.pool, previous.section_ids)
        before = {s.section_key: s for s in old_sections.values()}
        old_client = await clients.get(self.deps.pool, request.client_id, previous.client_version)
        changed_fields = diff_fields(old_client.record.wire(), client.record.wire())
        out = []
        for key, now in current.items():
            if key not in before:
                out.append(SectionChange(section_key=key, reason="new"))
            elif before[key].content != now.content:
                fields = sorted(changed_fields & set(section(key).fields))
                reason = "inputs changed" if fields else "regenerated"
                out.append(SectionChange(section_key=key, reason=reason, fields=fields))
        return out
