"""Usage rows for one section request: what was billed, and what the naive way would have cost."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from temporalio import activity

from domain.sections import DocumentKind, SectionSpec
from llm.client import Completion
from storage import usage
from tokenopt import naive, pricing
from tokenopt.service_tiers import ServiceTier


@dataclass(frozen=True)
class Baseline:
    """The naive counterfactual for one section: its share of the one-prompt-per-document call,
    plus the same completion, at the naive model without cache."""

    prompt_tokens: int
    naive_model: str

    def cost(self, completion_tokens: int) -> Decimal:
        return pricing.cost(self.naive_model, prompt_tokens=self.prompt_tokens, completion_tokens=completion_tokens)

    @classmethod
    def for_section(
        cls, record: dict[str, object], spec: SectionSpec, document: list[SectionSpec], naive_model: str
    ) -> Baseline:
        whole = naive.naive_prompt_tokens(record, document, naive_model)
        return cls(round(whole * naive.section_share(spec, document)), naive_model)


def service_tier(completion: Completion, *, batch: bool = False) -> ServiceTier:
    """The tier a call was billed at: a Batch API line's, else the one its response names."""
    return ServiceTier.BATCH if batch else ServiceTier.served(completion.service_tier)


class SectionLedger:
    """Writes the usage rows of one ``generate_section`` activity call."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        client_id: str,
        spec: SectionSpec,
        baseline: Baseline,
        free_models: frozenset[str],
        kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
    ):
        self.pool = pool
        self.client_id = client_id
        self.spec = spec
        self.baseline = baseline
        self.free_models = free_models
        self.kind = kind

    def cost(self, model: str, completion: Completion, *, batch: bool = False) -> Decimal:
        return pricing.cost(
            model,
            prompt_tokens=completion.prompt_tokens,
            cached_tokens=completion.cached_tokens,
            completion_tokens=completion.completion_tokens,
            free_models=self.free_models,
            tier=service_tier(completion, batch=batch),
        )

    def _record(self, **fields: object) -> usage.UsageRecord:
        info = activity.info()
        return usage.UsageRecord(
            client_id=self.client_id,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
            document_type=self.kind.value,
            section_key=self.spec.key,
            **fields,  # type: ignore[arg-type]
        )

    async def call(
        self,
        operation: str,
        model: str,
        completion: Completion,
        *,
        success: bool,
        tier: str,
        cache_tier: str = "none",
        cache_key: str | None = None,
        error: str | None = None,
        escalated: bool = False,
        steps: list[str] | None = None,
        batch: bool = False,
        counterfactual_completion_tokens: int | None = None,
    ) -> Decimal:
        """One billed call (``batch``: a Batch API line, at the batch price). Only a successful
        answer has a naive counterfactual: the naive way would not have made our failed calls,
        so they count fully against us. ``counterfactual_completion_tokens``: what the naive way
        would have written instead when it is not this answer (a patch replaces a whole section)."""
        cost = self.cost(model, completion, batch=batch)
        naive_completion = completion.completion_tokens
        if counterfactual_completion_tokens is not None:
            naive_completion = counterfactual_completion_tokens
        baseline_cost = self.baseline.cost(naive_completion) if success else Decimal(0)
        await usage.record(
            self.pool,
            self._record(
                operation=operation,
                model=model,
                prompt_tokens=completion.prompt_tokens,
                cached_prompt_tokens=completion.cached_tokens,
                completion_tokens=completion.completion_tokens,
                estimated_cost=cost,
                # A hit is a section served with no model call; a billed call never is one.
                cache_hit=False,
                cache_tier=cache_tier,
                cache_key=cache_key,
                request_duration_ms=completion.duration_ms,
                success=success,
                error_message=error,
                routing_tier=tier,
                escalated=escalated,
                compression_steps=steps or [],
                baseline_prompt_tokens=self.baseline.prompt_tokens if success else 0,
                baseline_completion_tokens=naive_completion if success else 0,
                baseline_cost=baseline_cost,
                service_tier=service_tier(completion, batch=batch).value,
            ),
        )
        return cost

    async def hit(
        self,
        model: str,
        cache_tier: str,
        cache_key: str,
        *,
        completion_tokens: int,
        counterfactual: bool = True,
        operation: str = "generate_section",
    ) -> Decimal:
        """A section served without a call: zero tokens, the whole counterfactual saved. The
        naive way would have written it again at the size the served answer really has
        (``completion_tokens``), not the catalogue's target. ``counterfactual=False`` when the
        naive way would not have written it either: nothing is claimed as saved."""
        baseline_cost = self.baseline.cost(completion_tokens) if counterfactual else Decimal(0)
        await usage.record(
            self.pool,
            self._record(
                operation=operation,
                model=model,
                cache_hit=True,
                cache_tier=cache_tier,
                cache_key=cache_key,
                request_duration_ms=0,
                success=True,
                baseline_prompt_tokens=self.baseline.prompt_tokens if counterfactual else 0,
                baseline_completion_tokens=completion_tokens if counterfactual else 0,
                baseline_cost=baseline_cost,
            ),
        )
        return baseline_cost

    async def embedding(self, model: str, tokens: int) -> None:
        await usage.record(
            self.pool,
            self._record(
                operation="embed",
                model=model,
                prompt_tokens=tokens,
                estimated_cost=pricing.cost(model, prompt_tokens=tokens, free_models=self.free_models),
                success=True,
            ),
        )
