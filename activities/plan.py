"""Business-plan activities: every side effect of a plan (Postgres, the LLM) happens here."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import asyncpg
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.outputs import output_model, schema_name, strict_json_schema
from domain.render import render_document
from domain.sections import DocumentKind, SectionSpec, UnknownSection, resolve_sections, section
from llm.client import Completion, LLMClient
from llm.errors import InvalidModelOutput, LLMError
from storage import clients, documents, sections, usage
from storage.clients import StoredClient, UnknownClient
from tokenopt import naive, pricing
from tokenopt.budget import BudgetExceeded
from tokenopt.prompts import PROMPT_VERSION, BuiltPrompt, build_section_prompt
from tokenopt.routing import ModelRouter, Tier, tier_for
from tokenopt.techniques import Technique, Techniques
from workflows.models import (
    AssembleRequest,
    DocumentRef,
    PlanInputs,
    PlanRequest,
    SectionRequest,
    SectionResult,
)
from workflows.shared import HEARTBEAT_EVERY_SECONDS

log = logging.getLogger(__name__)

# The first call plus two retries on invalid output; the first retry escalates a tier.
MAX_OUTPUT_ATTEMPTS = 3
OPERATION = "generate_section"


@dataclass
class PlanDependencies:
    pool: asyncpg.Pool
    llm: LLMClient
    router: ModelRouter
    naive_model: str
    free_models: frozenset[str] = field(default_factory=frozenset)
    techniques: Techniques = field(default_factory=Techniques)


def idempotency_key(client_id: str, prompt: BuiltPrompt) -> str:
    """What makes two generations the same work: the client and exactly what the section reads
    (its projected fields, section, prompt and schema versions). A client update that touches
    none of a section's fields leaves its key unchanged, so the section is reused: differential
    regeneration falls out of the same rule as retries and repeats."""
    return hashlib.sha256(
        f"{client_id}|{DocumentKind.BUSINESS_PLAN}|{prompt.input_hash}".encode()
    ).hexdigest()


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


class PlanActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps

    # -- prepare -------------------------------------------------------------------------
    @activity.defn
    async def prepare_plan(self, request: PlanRequest) -> PlanInputs:
        """Check the client and the sections before any LLM call is made."""
        try:
            stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
            specs = resolve_sections(request.level, request.sections)
        except UnknownClient as err:
            raise ApplicationError(str(err), type="UnknownClient", non_retryable=True) from None
        except UnknownSection as err:
            raise ApplicationError(str(err), type="UnknownSection", non_retryable=True) from None
        return PlanInputs(
            client_id=request.client_id,
            client_version=stored.version,
            sections=[s.key for s in specs],
        )

    # -- generate --------------------------------------------------------------------------
    @activity.defn
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        """Reuse the stored section if this exact work was done, else generate, validate, store."""
        try:
            spec = section(request.section_key)
            document_specs = [section(k) for k in request.document_sections]
            stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
        except UnknownSection as err:
            raise ApplicationError(str(err), type="UnknownSection", non_retryable=True) from None
        except UnknownClient as err:
            raise ApplicationError(str(err), type="UnknownClient", non_retryable=True) from None

        tier = self._tier(spec)
        try:
            prompt = self._prompt(stored, spec, self.deps.router.model_for(tier))
        except BudgetExceeded as err:
            raise ApplicationError(str(err), type="BudgetExceeded", non_retryable=True) from None
        key = idempotency_key(request.client_id, prompt)
        baseline_prompt = self._baseline_prompt_tokens(stored, spec, document_specs)
        if self.deps.techniques.on(Technique.REUSE):
            existing = await sections.find(self.deps.pool, key)
            if existing is not None:
                return await self._reused(request, spec, existing, baseline_prompt)

        async with _heartbeating():
            return await self._generate(request, spec, stored, key, tier, baseline_prompt)

    def _tier(self, spec: SectionSpec) -> Tier:
        return tier_for(spec.key) if self.deps.techniques.on(Technique.ROUTING) else Tier.PREMIUM

    def _prompt(self, stored: StoredClient, spec: SectionSpec, model: str) -> BuiltPrompt:
        return build_section_prompt(stored.record.wire(), spec, model=model, techniques=self.deps.techniques)

    async def _generate(
        self,
        request: SectionRequest,
        spec: SectionSpec,
        stored: StoredClient,
        key: str,
        tier: Tier,
        baseline_prompt: int,
    ) -> SectionResult:
        model_cls = output_model(spec.key)
        schema = strict_json_schema(model_cls)
        totals = SectionResult(section_key=spec.key, section_id=0, model="", tier=tier.value)
        problems: list[str] = []
        for attempt in range(1, MAX_OUTPUT_ATTEMPTS + 1):
            model = self.deps.router.model_for(tier)
            prompt = self._prompt(stored, spec, model)
            totals.compression_steps = list(prompt.compression_steps)
            completion = await self._call(request, spec, model, tier, prompt.messages, schema)
            totals = self._add(totals, completion, model, tier)
            try:
                if completion.finish_reason == "length":
                    raise InvalidModelOutput("output cut off at max_completion_tokens")
                content = model_cls.model_validate_json(completion.content).model_dump(mode="json")
            except (ValidationError, InvalidModelOutput) as err:
                problem = _describe_invalid(err)
                problems.append(f"attempt {attempt} ({model}): {problem}")
                await self._log_usage(
                    request,
                    spec,
                    completion,
                    model,
                    tier,
                    success=False,
                    error=f"invalid output: {problem}",
                    escalated=totals.escalated,
                    key=key,
                )
                # Cascade: a cheap model's bad answer goes once to the next tier up.
                if attempt == 1 and (up := tier.escalated()) and self.deps.router.model_for(up) != model:
                    tier = up
                    totals.escalated = True
                continue
            section_id = await sections.store(
                self.deps.pool,
                idempotency_key=key,
                client_id=request.client_id,
                client_version=request.client_version,
                document_kind=DocumentKind.BUSINESS_PLAN.value,
                section_key=spec.key,
                schema_version=spec.schema_version,
                prompt_version=PROMPT_VERSION,
                model=model,
                content=content,
            )
            baseline_cost = self._baseline_cost(baseline_prompt, completion.completion_tokens)
            await self._log_usage(
                request,
                spec,
                completion,
                model,
                tier,
                success=True,
                escalated=totals.escalated,
                baseline_prompt=baseline_prompt,
                baseline_cost=baseline_cost,
                key=key,
                steps=totals.compression_steps,
            )
            totals.section_id = section_id
            totals.model = model
            totals.tier = tier.value
            totals.baseline_tokens = baseline_prompt + completion.completion_tokens
            totals.baseline_cost = baseline_cost
            return totals
        raise ApplicationError(
            f"section {spec.key}: the model returned invalid JSON {MAX_OUTPUT_ATTEMPTS} times ("
            + "; ".join(problems)
            + ")",
            type="InvalidModelOutput",
            non_retryable=True,
        )

    async def _call(
        self,
        request: SectionRequest,
        spec: SectionSpec,
        model: str,
        tier: Tier,
        messages: list[dict[str, str]],
        schema: dict,
    ) -> Completion:
        try:
            return await self.deps.llm.complete_json(
                model=model,
                messages=messages,
                schema_name=schema_name(spec.key, spec.schema_version),
                schema=schema,
                # Room above the target so a good answer is never cut off.
                max_completion_tokens=spec.target_tokens * 2,
                prompt_cache_key=f"client-{request.client_id}",
            )
        except LLMError as err:
            failed = Completion("", model, None, 0, 0, 0, 0)
            await self._log_usage(request, spec, failed, model, tier, success=False, error=str(err))
            delay = timedelta(seconds=err.retry_after) if err.retry_after is not None else None
            raise ApplicationError(
                str(err), type=err.kind, non_retryable=not err.retryable, next_retry_delay=delay
            ) from None

    def _add(self, totals: SectionResult, completion: Completion, model: str, tier: Tier) -> SectionResult:
        totals.prompt_tokens += completion.prompt_tokens
        totals.cached_tokens += completion.cached_tokens
        totals.completion_tokens += completion.completion_tokens
        totals.cost += self._cost(model, completion)
        totals.duration_ms += completion.duration_ms
        totals.llm_calls += 1
        return totals

    def _cost(self, model: str, completion: Completion) -> Decimal:
        return pricing.cost(
            model,
            prompt_tokens=completion.prompt_tokens,
            cached_tokens=completion.cached_tokens,
            completion_tokens=completion.completion_tokens,
            free_models=self.deps.free_models,
        )

    def _baseline_prompt_tokens(
        self, stored: StoredClient, spec: SectionSpec, document_specs: list[SectionSpec]
    ) -> int:
        """This section's share of the naive way's one-prompt-per-document."""
        whole = naive.naive_prompt_tokens(stored.record.wire(), document_specs, self.deps.naive_model)
        return round(whole * naive.section_share(spec, document_specs))

    def _baseline_cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return pricing.cost(
            self.deps.naive_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    async def _reused(
        self,
        request: SectionRequest,
        spec: SectionSpec,
        existing: sections.StoredSection,
        baseline_prompt: int,
    ) -> SectionResult:
        """A finished section found by its idempotency key: no tokens paid again."""
        completion_tokens = spec.target_tokens  # what regenerating it would have produced
        baseline_cost = self._baseline_cost(baseline_prompt, completion_tokens)
        info = activity.info()
        await usage.record(
            self.deps.pool,
            usage.UsageRecord(
                operation=OPERATION,
                model=existing.model,
                client_id=request.client_id,
                workflow_id=info.workflow_id,
                run_id=info.workflow_run_id,
                activity_id=info.activity_id,
                attempt=info.attempt,
                document_type=DocumentKind.BUSINESS_PLAN.value,
                section_key=spec.key,
                cache_hit=True,
                cache_tier="stored",
                cache_key=existing.idempotency_key,
                request_duration_ms=0,
                success=True,
                baseline_prompt_tokens=baseline_prompt,
                baseline_completion_tokens=completion_tokens,
                baseline_cost=baseline_cost,
            ),
        )
        return SectionResult(
            section_key=spec.key,
            section_id=existing.id,
            model=existing.model,
            tier=tier_for(spec.key).value,
            cache_tier="stored",
            baseline_tokens=baseline_prompt + completion_tokens,
            baseline_cost=baseline_cost,
        )

    async def _log_usage(
        self,
        request: SectionRequest,
        spec: SectionSpec,
        completion: Completion,
        model: str,
        tier: Tier,
        *,
        success: bool,
        error: str | None = None,
        escalated: bool = False,
        baseline_prompt: int = 0,
        baseline_cost: Decimal = Decimal(0),
        key: str | None = None,
        steps: list[str] | None = None,
    ) -> None:
        info = activity.info()
        await usage.record(
            self.deps.pool,
            usage.UsageRecord(
                operation=OPERATION,
                model=model,
                prompt_tokens=completion.prompt_tokens,
                cached_prompt_tokens=completion.cached_tokens,
                completion_tokens=completion.completion_tokens,
                estimated_cost=self._cost(model, completion),
                client_id=request.client_id,
                workflow_id=info.workflow_id,
                run_id=info.workflow_run_id,
                activity_id=info.activity_id,
                attempt=info.attempt,
                document_type=DocumentKind.BUSINESS_PLAN.value,
                section_key=spec.key,
                cache_tier="none",
                cache_key=key,
                compression_steps=steps or [],
                request_duration_ms=completion.duration_ms,
                success=success,
                error_message=error,
                routing_tier=tier.value,
                escalated=escalated,
                baseline_prompt_tokens=baseline_prompt if success else 0,
                baseline_completion_tokens=completion.completion_tokens if success else 0,
                baseline_cost=baseline_cost,
            ),
        )

    # -- assemble --------------------------------------------------------------------------
    @activity.defn
    async def assemble_document(self, request: AssembleRequest) -> DocumentRef:
        """Store a new document version from the generated sections, rendered as Markdown."""
        ids = [s.section_id for s in request.sections]
        stored_sections = await sections.get_many(self.deps.pool, ids)
        stored = await clients.get(self.deps.pool, request.client_id, request.client_version)
        record = stored.record
        title = f"Business Plan: {record.brand_name or record.full_name}"
        # Sections arrive in catalogue order (resolve_sections), which is the reading order.
        ordered = [section(s.section_key) for s in request.sections]
        by_key = {stored_sections[i].section_key: stored_sections[i] for i in ids}
        markdown = render_document(title, [(spec.title, by_key[spec.key].content) for spec in ordered])
        document = await documents.store(
            self.deps.pool,
            client_id=request.client_id,
            kind=DocumentKind.BUSINESS_PLAN.value,
            level=request.level.value,
            client_version=request.client_version,
            workflow_id=request.workflow_id,
            run_id=request.run_id,
            section_ids=[by_key[spec.key].id for spec in ordered],
            markdown=markdown,
        )
        return DocumentRef(document_id=document.id, version=document.version, markdown_chars=len(markdown))


def _describe_invalid(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        return f"{err.error_count()} schema error(s), first at {where}: {first['msg']}"
    return str(err)
