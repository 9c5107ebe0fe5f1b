"""Usage rows for one section request: what was billed, and what the naive way would have cost.

A billed call's row goes to the answer spool first (with the valid answer, and the budget
reservation to settle), then to Postgres, retried while Postgres is away (activities.durable);
a later attempt of the same work finds in the spool what the earlier one could not write.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
from temporalio import activity

from activities.durable import persist
from domain.cache_policy import CacheTier
from domain.sections import DocumentKind, SectionSpec
from llm.client import Completion
from storage import usage
from storage.spool import KeptAnswer, Owed, Settlement, Spool
from tokenopt import naive, pricing
from tokenopt.service_tiers import ServiceTier

if TYPE_CHECKING:
    from activities.budget_guard import BudgetGuard


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
        spool: Spool | None = None,
        work: str | None = None,
    ):
        self.pool = pool
        self.client_id = client_id
        self.spec = spec
        self.baseline = baseline
        self.free_models = free_models
        self.kind = kind
        self.spool = spool or Spool()
        # What the spool files this work's debts under: the same for every attempt of it (a
        # section's idempotency key, a summary's exact key); None: nothing spooled.
        self.work = work

    def for_work(self, work: str) -> SectionLedger:
        """This ledger, spooling under ``work``."""
        out = copy.copy(self)
        out.work = work
        return out

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
            call_id=uuid.uuid4().hex,
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
        cache_tier: CacheTier = CacheTier.NONE,
        cache_key: str | None = None,
        error: str | None = None,
        escalated: bool = False,
        steps: list[str] | None = None,
        batch: bool = False,
        counterfactual_completion_tokens: int | None = None,
        call_id: str | None = None,
        settlement: Settlement | None = None,
        answer: KeptAnswer | None = None,
    ) -> Decimal:
        """One billed call (``batch``: a Batch API line, at the batch price). Only a successful
        answer has a naive counterfactual: the naive way would not have made our failed calls,
        so they count fully against us. ``counterfactual_completion_tokens``: what the naive way
        would have written instead when it is not this answer (a patch replaces a whole section).

        The row is spooled first with ``settlement`` (the call's reservation, settled by the
        caller) and ``answer`` (the valid answer, until ``release``), then written; ``call_id``
        (default: a new one) makes writing it twice write it once."""
        cost = self.cost(model, completion, batch=batch)
        naive_completion = completion.completion_tokens
        if counterfactual_completion_tokens is not None:
            naive_completion = counterfactual_completion_tokens
        baseline_cost = self.baseline.cost(naive_completion) if success else Decimal(0)
        row = self._record(
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
        )
        if call_id is not None:
            row.call_id = call_id

        def owe(owed: Owed) -> None:
            owed.rows[str(row.call_id)] = row
            if settlement is not None:
                owed.settlements[str(settlement.reservation_id)] = settlement
            if answer is not None:
                owed.answer = answer

        await self._owe(owe)
        await self._write(row)
        return cost

    async def hit(
        self,
        model: str,
        cache_tier: CacheTier,
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
        await self._write(
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
            )
        )
        return baseline_cost

    async def embedding(self, model: str, tokens: int) -> None:
        row = self._record(
            operation="embed",
            model=model,
            prompt_tokens=tokens,
            estimated_cost=pricing.cost(model, prompt_tokens=tokens, free_models=self.free_models),
            success=True,
        )
        await self._owe(lambda owed: owed.rows.__setitem__(str(row.call_id), row))
        await self._write(row)

    # -- the spool ---------------------------------------------------------------------------
    async def _owe(self, change: Any) -> None:
        """What the work owes more, on disk (fsynced) before the caller goes on, off the event
        loop: the other sections this worker runs meanwhile do not wait for the disk."""
        if self.work is not None and self.spool.enabled:
            await asyncio.to_thread(self.spool.update, self.work, change)

    def _strike_off(self, change: Any) -> None:
        """Something owed is paid: struck off in memory (the file goes once nothing is owed)."""
        if self.work is not None:
            self.spool.update(self.work, change)

    async def _write(self, row: usage.UsageRecord) -> None:
        await persist(lambda: usage.record(self.pool, row), f"usage row {row.operation} {row.section_key}")
        self._strike_off(lambda owed: owed.rows.pop(str(row.call_id), None))

    def settled(self, settlement: Settlement | None) -> None:
        """``settlement``'s reservation is settled: struck off the spool."""
        if settlement is not None:
            self._strike_off(lambda owed: owed.settlements.pop(str(settlement.reservation_id), None))

    def release(self) -> None:
        """The answer is in its home (the section or summary row): nothing of it is owed."""
        self._strike_off(lambda owed: setattr(owed, "answer", None))

    async def recover(self, guard: BudgetGuard) -> KeptAnswer | None:
        """What an earlier attempt of this work left in the spool: its rows written, its
        reservations settled (both idempotent), and its valid answer, if it had one, returned
        so it is stored rather than bought again (the caller stores it, then ``release``)."""
        if self.work is None or (owed := self.spool.read(self.work)) is None:
            return None
        for row in list(owed.rows.values()):
            await self._write(row)
        for settlement in list(owed.settlements.values()):
            await persist(functools.partial(guard.settle_reservation, settlement), "budget settlement")
            self.settled(settlement)
        return owed.answer
