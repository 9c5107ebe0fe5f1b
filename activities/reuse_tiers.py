"""The reuse tiers: a section served from work already paid for, cheapest first.

1. stored: this client version's section was already written (a retry, a replay, a repeat);
2. exact: the same request (same inputs, model and versions, same client) within its TTL;
3. semantic: an earlier answer of the same client, section, prompt and schema versions and model
   written from the same inputs (served as is), or from inputs that differ in a few facts:
4. patch: that answer revised by an RFC 6902 JSON Patch for the changed facts (tokenopt.patches),
   on the section's own model, falling back to a full rewrite when the patch fails.

Whatever serves a section, it is stored under the section's own idempotency key, and what is
written in full feeds the tiers (the exact cache entry, with its embedding). What a section reads
is tokenopt.reads: its keys, invalidation and the semantic guard all ask it; which tiers a section
may use is domain.cache_policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from activities.dependencies import PlanDependencies
from activities.durable import persist
from activities.section_cache import CACHE_ERRORS, SectionCache
from activities.section_job import SectionJob
from activities.writer import AnswerForm, OutputRejected, Written, patch_parser
from contracts.models import SectionResult
from domain.cache_policy import CacheTier, policy
from domain.outputs.schemas import SectionPatch, patch_schema_name, strict_json_schema
from storage import cache as cache_store
from storage import sections
from storage.cache import CacheEntry
from tokenopt.cache_keys import exact_key
from tokenopt.estimate import answer_tokens
from tokenopt.patches import allowance, build_patch_prompt, field_changes
from tokenopt.reads import PROMPT_VERSION
from tokenopt.techniques import Technique

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Base:
    """An earlier answer of the same client and section (scope as ``ReuseTiers.scope``) that may
    be served as is or patched: a live cache entry, or a stored section."""

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


@dataclass(frozen=True)
class TiersOn:
    """Which cache tiers may serve a section (the stored tier is the REUSE technique's alone)."""

    exact: bool
    semantic: bool
    patch: bool

    @property
    def any(self) -> bool:
        return self.exact or self.semantic or self.patch


class ReuseTiers:
    def __init__(self, deps: PlanDependencies, cache: SectionCache | None = None):
        self.deps = deps
        self.cache = cache or SectionCache(deps.pool, deps.llm, deps.cache)

    def _on(self, technique: Technique) -> bool:
        return self.deps.techniques.on(technique)

    # -- which tiers, under which keys -------------------------------------------------------
    def tiers_on(self, job: SectionJob) -> TiersOn:
        """The cache tiers this section may use (its policy, the techniques switched on)."""
        rules = policy(job.kind, job.spec.key)
        # Earlier answers are compared by the client fields they were written from; a section
        # reading a context (earlier months) is never served or patched from an answer written
        # on another context.
        earlier = rules.cacheable and not job.context
        return TiersOn(
            exact=self._on(Technique.EXACT_CACHE) and rules.cacheable,
            semantic=self._on(Technique.SEMANTIC_CACHE) and earlier and rules.semantic,
            patch=self._on(Technique.PATCHES) and earlier and rules.patchable,
        )

    def exact_key(self, job: SectionJob) -> str:
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

    def scope(self, job: SectionJob) -> cache_store.Scope:
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

    # -- the tiers -----------------------------------------------------------------------------
    async def done(self, job: SectionJob) -> SectionResult | None:
        """The section if an earlier attempt got it: what it left in the answer spool is written
        first (its usage rows, its settlement); then the stored tier (never for a fresh answer),
        else the answer it bought, stored now instead of bought again."""
        kept = await job.ledger.recover(self.deps.guard)
        if not job.request.fresh and (stored := await self.stored(job)) is not None:
            job.ledger.release()
            return stored
        if kept is None:
            return None
        log.info("%s: the answer an earlier attempt bought is stored, not bought again", job.spec.key)
        result, content = await self.store_written(job, Written.kept(kept))
        if self.tiers_on(job).exact:
            await self.put(self.deps.pool, job, self.exact_key(job), result, content)
        return result

    async def stored(self, job: SectionJob) -> SectionResult | None:
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

    async def exact(self, db: Any, job: SectionJob, ekey: str) -> SectionResult | None:
        """The exact tier: the same request within its TTL, stored under this section's key."""
        hit = await self.cache.exact(db, ekey, job.spec)
        if hit is None:
            return None
        section_id = await self.store(job, hit.content, hit.model)
        saved = await job.ledger.hit(hit.model, CacheTier.EXACT, ekey, completion_tokens=hit.completion_tokens)
        return self._served(job, section_id, hit.model, CacheTier.EXACT, saved)

    async def base(
        self, db: Any, job: SectionJob, semantic_on: bool, patch_on: bool
    ) -> tuple[Base | None, list[float] | None]:
        """The earlier answer to serve or patch, and the query's embedding when one was made: the
        nearest live cache entry by its inputs (semantic tier), else the latest live one, else the
        latest stored answer (the cache expires; stored sections do not)."""
        scope = self.scope(job)
        vector = None
        if semantic_on:
            found, vector = await self.cache.similar(db, scope, job.spec, job.prompt.inputs, job.ledger)
            if found is not None:
                return Base.of_entry(found[0]), vector
        if not patch_on:
            return None, vector
        if (entry := await self.cache.latest(db, scope, job.spec)) is not None:
            return Base.of_entry(entry), vector
        return await self.stored_base(job), vector

    async def stored_base(self, job: SectionJob) -> Base | None:
        """The client's latest stored answer to this section in the same scope, with its inputs."""
        scope = self.scope(job)
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

    async def from_base(
        self, job: SectionJob, entry: Base, *, serve: bool, patch: bool
    ) -> tuple[SectionResult, dict[str, Any]] | None:
        """``entry`` served as is when it was written from exactly what the section reads now (and
        no client update since marked it stale), else patched for the facts that changed; None:
        write the section in full."""
        changes = field_changes(entry.inputs, job.prompt.inputs)
        if serve and not changes and not entry.stale:
            section_id = await self.store(job, entry.content, entry.model)
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
        return await self.store_written(job, written)

    async def put(
        self,
        db: Any,
        job: SectionJob,
        ekey: str,
        result: SectionResult,
        content: dict[str, Any],
        vector: list[float] | None = None,
    ) -> None:
        """Cache what was written (or served) under the exact key, for the tiers to find."""
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

    # -- storing an answer under the section's key ----------------------------------------------
    async def store_written(self, job: SectionJob, written: Written) -> tuple[SectionResult, dict[str, Any]]:
        """Store a bought answer, then let its spooled copy go; its figures and content."""
        written.result.section_id = await self.store(job, written.content, written.result.model)
        job.ledger.release()
        return written.result, written.content

    async def store(self, job: SectionJob, content: dict[str, Any], model: str) -> int:
        """Store the section (idempotent by its key), waiting for Postgres if it is away."""
        return await persist(lambda: self._insert(job, content, model), f"section {job.spec.key}")

    async def _insert(self, job: SectionJob, content: dict[str, Any], model: str) -> int:
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
        self, job: SectionJob, section_id: int, model: str, cache_tier: CacheTier, baseline_cost: Any
    ) -> SectionResult:
        return SectionResult(
            section_key=job.spec.key,
            section_id=section_id,
            model=model,
            tier=job.tier,
            cache_tier=cache_tier,
            baseline_tokens=job.ledger.baseline.prompt_tokens + job.spec.target_tokens,
            baseline_cost=baseline_cost,
        )

    # -- asked before a call is planned (section groups at prepare, the bulk path) --------------
    async def may_serve(self, job: SectionJob) -> bool:
        """Whether a stored answer, a live exact entry, or (where its semantic or patch tier is
        on) an earlier answer of this client could serve the section, so no call is planned."""
        if self._on(Technique.REUSE) and await sections.find(self.deps.pool, job.key) is not None:
            return True
        on = self.tiers_on(job)
        if on.any and await self.cache.could_serve(
            self.exact_key(job), self.scope(job), exact=on.exact, earlier=on.semantic or on.patch
        ):
            return True
        return on.patch and await self.stored_base(job) is not None  # an earlier stored answer to patch

    async def reusable(self, job: SectionJob) -> bool:
        """Whether the stored or exact tier would serve this section without a call."""
        if self._on(Technique.REUSE) and await sections.find(self.deps.pool, job.key) is not None:
            return True
        if not (self._on(Technique.EXACT_CACHE) and policy(job.kind, job.spec.key).cacheable):
            return False
        try:
            return await cache_store.has_live(
                self.deps.pool, self.exact_key(job), schema_version=job.spec.schema_version
            )
        except CACHE_ERRORS:
            return False

    async def patchable(self, job: SectionJob) -> bool:
        """Whether the semantic or patch tier may serve this section from an earlier answer (a
        small patch call, or none): a document's Batch API batch leaves it to ``generate_section``."""
        if job.request.fresh:
            return False
        on = self.tiers_on(job)
        if not (on.semantic or on.patch):
            return False
        if await self.cache.latest(self.deps.pool, self.scope(job), job.spec) is not None:
            return True
        return on.patch and await self.stored_base(job) is not None

    async def keep(
        self, job: SectionJob, content: dict[str, Any], model: str, completion_tokens: int, cost: Any
    ) -> int:
        """Store an answer written elsewhere (a Batch API line) exactly as a full generation
        stores it: the section under its idempotency key, and the exact cache entry."""
        section_id = await self.store(job, content, model)
        if self._on(Technique.EXACT_CACHE) and policy(job.kind, job.spec.key).cacheable:
            await self.cache.put(
                self.deps.pool,
                key=self.exact_key(job),
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
