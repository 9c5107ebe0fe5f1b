"""Business-plan activities: every side effect of a plan (Postgres, the LLM) happens here.

A section is served by the first tier that can, cheapest first:
1. stored: this client version's section was already written (a retry, a replay, a repeat);
2. exact: the same request (same inputs, model and versions, same client) within its TTL;
3. semantic: an earlier answer of the same client, section, prompt and schema versions and model
   written from the same inputs (served as is), or from inputs that differ in a few facts:
4. patch: that answer revised by an RFC 6902 JSON Patch for the changed facts (tokenopt.patches),
   on the section's own model, falling back to a full rewrite when the patch fails;
5. a full generation, whose answer then feeds the tiers above.

What a section reads is tokenopt.reads: its keys, invalidation and the semantic guard all ask it.

Small low-priority sections of one document that no tier above serves may share one call
(``generate_section_batch``; tokenopt.batching decides at prepare): each member is still served
by the stored and exact tiers first, and stored and cached under its own keys.
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

from activities import crm_notify
from activities.alerts import AlertConfig, AlertNotifier
from activities.budget_guard import BudgetGuard
from activities.crm_notify import CrmNotifyConfig
from activities.durable import persist
from activities.group_call import GroupMember, write_group
from activities.ledger import Baseline, SectionLedger
from activities.rate_limiter import RateLimiter
from activities.section_cache import CACHE_ERRORS, CacheConfig, SectionCache
from activities.writer import AnswerForm, OutputRejected, SectionWriter, Written, patch_parser
from domain.cache_policy import CacheTier, policy
from domain.catalogue import deliverables
from domain.catalogue.plan import resolve_sections, section
from domain.outputs.schemas import SectionPatch, in_schema_order, patch_schema_name, strict_json_schema
from domain.render import render_document
from domain.sections import DocumentKind, SectionSpec, Tier, UnknownSection
from llm.client import LOCAL_MAX_TOKENS, LLMClient
from storage import cache as cache_store
from storage import clients, documents, edits, sections
from storage.cache import CacheEntry
from storage.clients import StoredClient, UnknownClient, diff_fields
from storage.spool import Spool
from tokenopt.budget import BudgetExceeded
from tokenopt.cache_keys import exact_key
from tokenopt.estimate import answer_tokens
from tokenopt.grouping import MAX_GROUP_COMPLETION_TOKENS, Candidate, choose_groups
from tokenopt.patches import allowance, build_patch_prompt, field_changes
from tokenopt.prompts import BuiltPrompt, build_group_prompt, build_section_prompt
from tokenopt.reads import PROMPT_VERSION, reads
from tokenopt.routing import ModelRouter
from tokenopt.techniques import Technique, Techniques
from workflows.models import (
    AssembleRequest,
    ChangeReason,
    DocumentRef,
    PlanInputs,
    PlanRequest,
    SectionChange,
    SectionGroupRequest,
    SectionGroupResult,
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
    # Bulk work may go through the OpenAI Batch API (WAVELAUNCH_BATCH_API); never for a local model.
    batch_api: bool = True
    # Budgets and alerts; unset: budgets enforced, alerts logged only (no webhook).
    guard: BudgetGuard = None  # type: ignore[assignment]
    # The provider's rate limits shared by every worker (WAVELAUNCH_RATE_LIMITS); unset: none held.
    limiter: RateLimiter | None = None
    # Where bought answers wait for Postgres (storage.spool); unset: in-memory retries only.
    spool: Spool = field(default_factory=Spool)
    # Where the CRM is told about documents (activities/crm_notify.py); unset: it is not.
    crm: CrmNotifyConfig = field(default_factory=CrmNotifyConfig)

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = BudgetGuard(self.pool, AlertNotifier(self.pool, AlertConfig()), free_models=self.free_models)

    async def document_stored(self, doc: documents.StoredDocument) -> None:
        """A document version was stored: the CRM is told through its outbox (idempotent)."""
        previous = None
        if doc.version > 1:
            previous = await documents.version_of(self.pool, doc.client_id, doc.kind, doc.document_key, doc.version - 1)
        await crm_notify.document_stored(self.pool, self.crm, doc, previous)

    async def keep_edits(
        self, client_id: str, kind: str, document_key: str, generated: dict[str, int]
    ) -> dict[str, int]:
        """Section key -> the section a new version holds: the operator's, for a locked section
        (an edit sticks); a generated answer unlike what the operator edited over is kept as a
        proposal for the operator to accept or reject (storage.edits; idempotent)."""
        held = await edits.locks(self.pool, client_id, kind, document_key)
        if not held:
            return generated
        wanted = [i for lock in held.values() for i in (lock.base_section_id, generated.get(lock.section_key)) if i]
        contents = {i: s.content for i, s in (await sections.get_many(self.pool, wanted)).items()}
        out = dict(generated)
        for key, lock in held.items():
            new = generated.get(key)
            if new is None:
                continue
            if new != lock.section_id and contents.get(new) != contents.get(lock.base_section_id or 0):
                await edits.propose(self.pool, client_id, kind, document_key, key, lock.section_id, new)
            out[key] = lock.section_id
        return out

    async def after_document(self) -> None:
        """Checks made once a document is assembled (the cache hit rate); never fail the document."""
        try:
            await self.guard.notifier.check_cache_hit_rate()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            log.warning("cache hit rate not checked: %s", err)


def idempotency_key(client_id: str, prompt: BuiltPrompt, kind: DocumentKind = KIND) -> str:
    """What makes two generations the same work: the same client, the document kind and exactly
    what the section reads (tokenopt.reads, with its values), not the client's version. A
    retried, replayed or repeated plan reuses the section; so does a later client version whose
    edits this section does not read, however long after, and a later deliverable month for a
    section that reads no month (Brand Context)."""
    raw = f"{client_id}|{kind}|{prompt.input_hash}"
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


@dataclass(frozen=True)
class Base:
    """An earlier answer of the same client and section (scope as ``_scope``) that may be served
    as is or patched: a live cache entry, or a stored section."""

    content: dict[str, Any]
    inputs: dict[str, str]
    # Its real completion tokens when known (a cache entry), else 0: counted from the content.
    completion_tokens: int
    key: str
    stale: bool
    model: str

    @classmethod
    def of_entry(cls, entry: CacheEntry) -> Base:
        return cls(entry.content, entry.inputs, entry.completion_tokens, entry.key, entry.stale, entry.model)


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
        keys = [s.key for s in specs]
        # The same requests the workflow will make (regenerated sections are never batched).
        requests = [
            SectionRequest(
                client_id=request.client_id,
                client_version=stored.version,
                section_key=key,
                document_sections=keys,
                fresh=key in request.regenerate,
            )
            for key in keys
        ]
        return PlanInputs(
            client_id=request.client_id,
            client_version=stored.version,
            sections=keys,
            batches=await self.section_batches(requests),
        )

    # -- generate --------------------------------------------------------------------------
    @activity.defn
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        """Serve the section from the cheapest tier that can, generating it only if none can."""
        job = await self._job(request)
        if (done := await self._done(job)) is not None:
            return done
        if request.fresh:
            async with _heartbeating():
                return (await self._generate(job))[0]

        async with _heartbeating():
            exact_on, semantic_on, patch_on = self._cache_tiers(job)
            if not (exact_on or semantic_on or patch_on):
                return (await self._generate(job))[0]
            ekey = self._exact_key(job)
            async with self.cache.single_flight(ekey) as db:
                if exact_on and (hit := await self._exact(db, job, ekey)) is not None:
                    return hit
                base, vector = await self._base(db, job, semantic_on, patch_on)
                written = await self._from_base(job, base, serve=semantic_on, patch=patch_on) if base else None
                if written is None:
                    result, content = await self._generate(job)
                else:
                    result, content = written
                await self._put(db, job, ekey, result, content, vector)
                return result

    @activity.defn
    async def generate_section_batch(self, request: SectionGroupRequest) -> SectionGroupResult:
        """Several small sections of one document in one call (a batch chosen at prepare).

        Each member is first served by the stored and exact tiers as ``generate_section`` would
        serve it; what is left shares one call (one left is written alone). Members the batch
        did not answer validly (not JSON, cut off, or their part invalid) are then written one by
        one with the usual retries, so nothing valid is paid twice. Each member is stored and
        cached under its own keys, exactly as if it had been written alone.
        """
        jobs = [await self._job(r) for r in request.members]
        results: dict[str, SectionResult] = {}
        async with _heartbeating():
            for job in jobs:
                if (done := await self._done(job)) is not None:
                    results[job.spec.key] = done
                elif job.request.fresh:
                    results[job.spec.key] = (await self._generate(job))[0]
            left = [j for j in jobs if j.spec.key not in results]
            ekeys = {j.spec.key: self._exact_key(j) for j in left if self._cache_tiers(j)[0]}
            async with self.cache.single_flight_many(list(ekeys.values())) as db:
                for job in left:
                    if job.spec.key in ekeys and (hit := await self._exact(db, job, ekeys[job.spec.key])):
                        results[job.spec.key] = hit
                left = [j for j in left if j.spec.key not in results]
                batched = await self._write_batch(left) if len(left) > 1 else {}
                for job in left:
                    if (written := batched.get(job.spec.key)) is not None:
                        result, content = await self._finish(job, written)
                    else:
                        result, content = await self._generate(job)
                    if job.spec.key in ekeys:
                        await self._put(db, job, ekeys[job.spec.key], result, content)
                    results[job.spec.key] = result
        return SectionGroupResult(sections=[results[j.spec.key] for j in jobs])

    async def _write_batch(self, jobs: list[_Job]) -> dict[str, Written]:
        """One call for ``jobs`` (one tier and context, as tokenopt.batching groups them): the
        members it answered validly; the others are left for the per-section path."""
        tier, context = jobs[0].tier, jobs[0].context
        if any(j.tier is not tier or j.context != context for j in jobs):
            log.warning("batch %s mixes tiers or contexts; writing it one by one", [j.spec.key for j in jobs])
            return {}
        prompt = build_group_prompt(
            jobs[0].client.record.wire(),
            [j.spec for j in jobs],
            model=self.deps.router.model_for(tier),
            techniques=self.deps.techniques,
            context=context,
            kind=jobs[0].kind,
        )
        members = [GroupMember(j.spec, j.ledger, j.prompt.estimated_tokens, j.key) for j in jobs]
        first = jobs[0].request
        outcome = await write_group(
            self.deps.llm,
            self.deps.router,
            first.client_id,
            tier,
            members,
            prompt.messages,
            self.guard,
            service_tier=first.service_tier,
            deadline=first.deadline,
            limiter=self.deps.limiter,
        )
        for key, problem in outcome.problems.items():
            log.warning("batch member %s invalid (%s); writing it on its own", key, problem)
        return outcome.written

    async def _done(self, job: _Job) -> SectionResult | None:
        """The section if an earlier attempt got it: what it left in the answer spool is written
        first (its usage rows, its settlement); then the stored tier (never for a fresh answer),
        else the answer it bought, stored now instead of bought again."""
        kept = await job.ledger.recover(self.guard)
        if not job.request.fresh and (stored := await self._stored(job)) is not None:
            job.ledger.release()
            return stored
        if kept is None:
            return None
        log.info("%s: the answer an earlier attempt bought is stored, not bought again", job.spec.key)
        result, content = await self._finish(job, Written.kept(kept))
        if self._cache_tiers(job)[0]:
            await self._put(self.deps.pool, job, self._exact_key(job), result, content)
        return result

    async def _stored(self, job: _Job) -> SectionResult | None:
        """The stored tier: this exact work was already done (a retry, a replay, a repeat)."""
        if not self._on(Technique.REUSE):
            return None
        existing = await sections.find(self.deps.pool, job.key)
        if existing is None:
            return None
        saved = await job.ledger.hit(
            existing.model,
            CacheTier.STORED,
            job.key,
            completion_tokens=answer_tokens(existing.content, existing.model),
            counterfactual=job.request.reuse_saves,
        )
        return self._served(job, existing.id, existing.model, CacheTier.STORED, saved)

    def _cache_tiers(self, job: _Job) -> tuple[bool, bool, bool]:
        """(exact tier on, semantic tier on, patch tier on) for this section."""
        rules = policy(job.kind, job.spec.key)
        exact_on = self._on(Technique.EXACT_CACHE) and rules.cacheable
        # Earlier answers are compared by the client fields they were written from; a section
        # reading a context (earlier months) is never served or patched from an answer written
        # on another context.
        earlier = rules.cacheable and not job.context
        semantic_on = self._on(Technique.SEMANTIC_CACHE) and earlier and rules.semantic
        patch_on = self._on(Technique.PATCHES) and earlier and rules.patchable
        return exact_on, semantic_on, patch_on

    async def _exact(self, db: Any, job: _Job, ekey: str) -> SectionResult | None:
        """The exact tier: the same request within its TTL, stored under this section's key."""
        hit = await self.cache.exact(db, ekey, job.spec)
        if hit is None:
            return None
        section_id = await self._store(job, hit.content, hit.model)
        saved = await job.ledger.hit(hit.model, CacheTier.EXACT, ekey, completion_tokens=hit.completion_tokens)
        return self._served(job, section_id, hit.model, CacheTier.EXACT, saved)

    async def _put(
        self,
        db: Any,
        job: _Job,
        ekey: str,
        result: SectionResult,
        content: dict[str, Any],
        vector: list[float] | None = None,
    ) -> None:
        await self.cache.put(
            db,
            key=ekey,
            client_id=job.request.client_id,
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

    # -- batches ---------------------------------------------------------------------------
    async def section_batches(self, requests: list[SectionRequest], *, context: str = "") -> list[list[str]]:
        """Which of a document's sections to write together (tokenopt.batching decides), among
        those no stored or cached answer can serve: a section with a stored answer, a live exact
        entry, or (where its semantic or patch tier is on) an earlier answer of this client to
        serve or patch, is left to its own tiers.
        ``context`` is the text the sections that read one would carry (a deliverable's digest)."""
        if not self._on(Technique.BATCHING):
            return []
        candidates = []
        record: dict[str, object] = {}
        for request in requests:
            if request.fresh:
                continue
            try:
                job = await self._job(request, context=context)
            except ApplicationError:
                continue  # e.g. over budget: its own activity reports it, after the others ran
            record = job.client.record.wire()
            if self._on(Technique.REUSE) and await sections.find(self.deps.pool, job.key) is not None:
                continue
            exact_on, semantic_on, patch_on = self._cache_tiers(job)
            if (exact_on or semantic_on or patch_on) and await self.cache.could_serve(
                self._exact_key(job),
                self._scope(job),
                exact=exact_on,
                earlier=semantic_on or patch_on,
            ):
                continue
            if patch_on and await self._stored_base(job) is not None:
                continue  # an earlier stored answer to patch
            candidates.append(Candidate(job.spec, job.tier, job.prompt, job.context))
        if not candidates:
            return []
        kind = requests[0].document_kind
        batches = choose_groups(
            candidates,
            record,
            kind=kind,
            techniques=self.deps.techniques,
            model_for=self.deps.router.model_for,
            max_completion_tokens=self.max_batch_completion_tokens,
        )
        for batch in batches:
            log.info("batching %s: about %d tokens saved", ", ".join(batch.keys), batch.saved_tokens)
        return [list(b.keys) for b in batches]

    @property
    def max_batch_completion_tokens(self) -> int:
        """The completion budget a batch may ask for: the local server's cap when it has one."""
        if self.deps.llm.structured_output == "json_object":
            return LOCAL_MAX_TOKENS
        return MAX_GROUP_COMPLETION_TOKENS

    async def _job(self, request: SectionRequest, *, context: str | None = None) -> _Job:
        """What a section request works with; ``context`` given (prepare) instead of read by
        reference."""
        kind = request.document_kind
        try:
            spec = section_spec(kind, request.section_key)
            document = [section_spec(kind, k) for k in request.document_sections]
            client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        except UnknownSection as err:
            raise _final("UnknownSection", err) from None
        except UnknownClient as err:
            raise _final("UnknownClient", err) from None
        context = await self._context(request) if context is None else self._reads_context(request, context)
        tier = reads(kind, spec, self.deps.techniques).tier
        try:
            prompt = self._prompt(client, spec, self.deps.router.model_for(tier), kind, context)
        except BudgetExceeded as err:
            raise _final("BudgetExceeded", err) from None
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
            self.guard,
            service_tier=request.service_tier,
            deadline=request.deadline,
            limiter=self.deps.limiter,
        )
        return _Job(request, spec, client, tier, prompt, key, ledger, writer, context)

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

    def _scope(self, job: _Job) -> cache_store.Scope:
        """Whose earlier answers may stand in for this section: the same client, document kind,
        section, prompt and schema versions, and model (its routing tier's)."""
        return cache_store.Scope(
            client_id=job.request.client_id,
            document_kind=job.kind.value,
            section_key=job.spec.key,
            schema_version=job.spec.schema_version,
            prompt_version=PROMPT_VERSION,
            model=self.deps.router.model_for(job.tier),
        )

    async def _base(
        self, db: Any, job: _Job, semantic_on: bool, patch_on: bool
    ) -> tuple[Base | None, list[float] | None]:
        """The earlier answer to serve or patch, and the query's embedding when one was made: the
        nearest live cache entry by its inputs (semantic tier), else the latest live one, else the
        latest stored answer (the cache expires; stored sections do not)."""
        scope = self._scope(job)
        vector = None
        if semantic_on:
            found, vector = await self.cache.similar(db, scope, job.spec, job.prompt.inputs, job.ledger)
            if found is not None:
                return Base.of_entry(found[0]), vector
        if not patch_on:
            return None, vector
        if (entry := await self.cache.latest(db, scope, job.spec)) is not None:
            return Base.of_entry(entry), vector
        return await self._stored_base(job), vector

    async def _stored_base(self, job: _Job) -> Base | None:
        """The client's latest stored answer to this section in the same scope, with its inputs."""
        scope = self._scope(job)
        written = await sections.latest_written(
            self.deps.pool,
            client_id=scope.client_id,
            document_kind=scope.document_kind,
            section_key=scope.section_key,
            schema_version=scope.schema_version,
            prompt_version=scope.prompt_version,
            model=scope.model,
        )
        if written is None:
            return None
        return Base(written.content, written.inputs, 0, written.idempotency_key, False, written.model)

    async def _from_base(
        self, job: _Job, entry: Base, *, serve: bool, patch: bool
    ) -> tuple[SectionResult, dict[str, Any]] | None:
        """``entry`` served as is when it was written from exactly what the section reads now (and
        no client update since marked it stale), else patched for the facts that changed; None:
        write the section in full."""
        changes = field_changes(entry.inputs, job.prompt.inputs)
        if serve and not changes and not entry.stale:
            section_id = await self._store(job, entry.content, entry.model)
            tokens = entry.completion_tokens or answer_tokens(entry.content, entry.model)
            saved = await job.ledger.hit(entry.model, CacheTier.SEMANTIC, entry.key, completion_tokens=tokens)
            return self._served(job, section_id, entry.model, CacheTier.SEMANTIC, saved), entry.content
        if not patch or not changes:
            return None
        model = self.deps.router.model_for(job.tier)
        full = entry.completion_tokens or answer_tokens(entry.content, model)
        limit = allowance(changes, job.prompt.inputs, full, model)
        if limit is None:
            log.info("%s: %d changed field(s) need a rewrite, not a patch", job.spec.key, len(changes))
            return None
        form = AnswerForm(
            schema_name=patch_schema_name(),
            schema=strict_json_schema(SectionPatch),
            max_completion_tokens=limit,
            parse=patch_parser(job.spec, entry.content),
            counterfactual_completion_tokens=full,
        )

        def messages_for(model: str) -> tuple[list[dict[str, str]], list[str]]:
            prompt = build_patch_prompt(job.spec, entry.content, changes, model=model, limit=limit, kind=job.kind)
            return prompt.messages, []

        try:
            written = await job.writer.write(
                job.spec,
                job.tier,  # the section's own model: a patch is not a cheaper section
                messages_for,
                operation="patch_section",
                cache_tier=CacheTier.PATCH,
                cache_key=entry.key,
                attempts=1,
                form=form,
            )
        except OutputRejected as err:
            log.info("%s: patch rejected (%s); writing it in full", job.spec.key, err)
            return None
        written.result.cache_tier = CacheTier.PATCH
        return await self._finish(job, written)

    async def _finish(self, job: _Job, written: Written) -> tuple[SectionResult, dict[str, Any]]:
        written.result.section_id = await self._store(job, written.content, written.result.model)
        job.ledger.release()
        return written.result, written.content

    async def _store(self, job: _Job, content: dict[str, Any], model: str) -> int:
        """Store the section (idempotent by its key), waiting for Postgres if it is away."""
        return await persist(lambda: self._insert(job, content, model), f"section {job.spec.key}")

    async def _insert(self, job: _Job, content: dict[str, Any], model: str) -> int:
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
            inputs=job.prompt.inputs,
        )

    def _served(
        self, job: _Job, section_id: int, model: str, cache_tier: CacheTier, baseline_cost: Any
    ) -> SectionResult:
        return SectionResult(
            section_key=job.spec.key,
            section_id=section_id,
            model=model,
            tier=job.tier.value,
            cache_tier=cache_tier,
            baseline_tokens=job.ledger.baseline.prompt_tokens + job.spec.target_tokens,
            baseline_cost=baseline_cost,
        )

    # -- the bulk path (activities.bulk): the same job, prompt, key and storage --------------
    async def section_job(self, request: SectionRequest) -> _Job:
        """Everything ``generate_section`` would work with for ``request``."""
        return await self._job(request)

    async def reusable(self, job: _Job) -> bool:
        """Whether the stored or exact tier would serve this section without a call."""
        if self._on(Technique.REUSE) and await sections.find(self.deps.pool, job.key) is not None:
            return True
        if not (self._on(Technique.EXACT_CACHE) and policy(job.kind, job.spec.key).cacheable):
            return False
        try:
            return await cache_store.has_live(
                self.deps.pool, self._exact_key(job), schema_version=job.spec.schema_version
            )
        except CACHE_ERRORS:
            return False

    async def patchable(self, job: _Job) -> bool:
        """Whether the semantic or patch tier may serve this section from an earlier answer (a
        small patch call, or none): a document's batch leaves it to ``generate_section``."""
        if job.request.fresh:
            return False
        _, semantic_on, patch_on = self._cache_tiers(job)
        if not (semantic_on or patch_on):
            return False
        if await self.cache.latest(self.deps.pool, self._scope(job), job.spec) is not None:
            return True
        return patch_on and await self._stored_base(job) is not None

    def request_body(self, job: _Job) -> tuple[str, dict[str, Any]]:
        """The model and the chat request body a full generation of ``job`` would send."""
        model = self.deps.router.model_for(job.tier)
        return model, self.deps.llm.request_body(**job.writer.call_kwargs(job.spec, model, job.prompt.messages))

    async def keep(self, job: _Job, content: dict[str, Any], model: str, completion_tokens: int, cost: Any) -> int:
        """Store an answer written elsewhere (a Batch API line) exactly as a full generation
        stores it: the section under its idempotency key, and the exact cache entry."""
        section_id = await self._store(job, content, model)
        if self._on(Technique.EXACT_CACHE) and policy(job.kind, job.spec.key).cacheable:
            await self.cache.put(
                self.deps.pool,
                key=self._exact_key(job),
                client_id=job.request.client_id,
                kind=job.kind,
                spec=job.spec,
                prompt_version=PROMPT_VERSION,
                section_id=section_id,
                content=content,
                inputs=job.prompt.inputs,
                model=model,
                completion_tokens=completion_tokens,
                cost=cost,
                embedding=None,
            )
        return section_id

    # -- assemble --------------------------------------------------------------------------
    @activity.defn
    async def assemble_document(self, request: AssembleRequest) -> DocumentRef:
        """Store a new document version from the generated sections, rendered as Markdown."""
        # An operator's edit sticks: the locked section is kept, a new answer becomes a proposal.
        held = await self.deps.keep_edits(
            request.client_id, KIND.value, KIND.value, {s.section_key: s.section_id for s in request.sections}
        )
        stored_sections = await sections.get_many(self.deps.pool, list(held.values()))
        client = await clients.get(self.deps.pool, request.client_id, request.client_version)
        title = f"Business Plan: {client.record.brand_name or client.record.full_name}"
        # Sections arrive in catalogue order (resolve_sections), which is the reading order.
        ordered = [(section(s.section_key), stored_sections[held[s.section_key]]) for s in request.sections]
        parts = [(spec.title, in_schema_order(spec.key, stored.content)) for spec, stored in ordered]
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
        await self.deps.document_stored(document)
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
            return [SectionChange(section_key=k, reason=ChangeReason.NEW) for k in current]
        old_sections = await sections.get_many(self.deps.pool, previous.section_ids)
        before = {s.section_key: s for s in old_sections.values()}
        old_client = await clients.get(self.deps.pool, request.client_id, previous.client_version)
        changed_fields = diff_fields(old_client.record.wire(), client.record.wire())
        out = []
        for key, now in current.items():
            if key not in before:
                out.append(SectionChange(section_key=key, reason=ChangeReason.NEW))
            elif before[key].content != now.content:
                fields = sorted(changed_fields & set(reads(KIND, section(key), self.deps.techniques).fields))
                reason = ChangeReason.INPUTS_CHANGED if fields else ChangeReason.REGENERATED
                out.append(SectionChange(section_key=key, reason=reason, fields=fields))
        return out
