"""One direct LLM call on the service tier its deadline allows, held against the budgets at that
tier's price, each try under the provider's rate limits (``activities.rate_limiter``): flex
first where ``tokenopt.service_tiers`` says so, then standard at once when flex refuses (429,
resource unavailable) or runs out of time. Every try is its own reservation, settled at the
price of the tier that served it, and a failed try is a usage row."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from activities.budget_guard import BudgetGuard
from activities.rate_limiter import RateLimiter, Slot
from llm.client import Completion, LLMClient
from llm.errors import LLMError
from storage.spool import Settlement
from tokenopt import estimate, pricing, service_tiers
from tokenopt.service_tiers import ServiceTier

# (the error, the tier it was tried on) -> records the failed try.
OnFailure = Callable[[LLMError, ServiceTier], Awaitable[None]]
# (model, completion) -> its dollars (priced at the tier the completion names).
Pricer = Callable[[str, Completion], Decimal]
T = TypeVar("T")
# (the answer, the settlement its reservation owes) -> what the caller made of it, recorded (and
# spooled) before the reservation is settled.
OnAnswer = Callable[[Completion, Settlement | None], Awaitable[T]]


def failed_completion(model: str, tier: ServiceTier) -> Completion:
    """The empty completion a failed try is recorded with (nothing billed), naming its tier."""
    return Completion("", model, None, 0, 0, 0, 0, service_tier=tier.wire)


async def complete_on_tier(
    llm: LLMClient,
    guard: BudgetGuard,
    call: dict[str, Any],
    *,
    client_id: str | None,
    allowed: ServiceTier = ServiceTier.STANDARD,
    deadline: datetime | None = None,
    price: Pricer,
    on_failure: OnFailure,
    on_answer: OnAnswer[T],
    limiter: RateLimiter | None = None,
) -> tuple[T, Settlement | None]:
    """``llm.complete_json(**call)`` on the cheapest tier ``allowed`` and ``deadline`` permit;
    the answer goes to ``on_answer`` inside its reservation, and its result comes back with the
    settlement that was written when the reservation closed. Raises the last try's LLMError when
    no try answered (each failed try already recorded). With a ``limiter`` each try first takes
    its place under the model's limits (its prompt plus the answer it allows, as the provider
    counts it); a long wait raises ``RateLimited`` before anything is reserved or bought."""
    model = call["model"]
    limit = call["max_completion_tokens"]
    time_left = deadline - datetime.now(UTC) if deadline is not None else None
    attempts = service_tiers.call_attempts(
        allowed,
        time_left=time_left,
        # A local model (json_object mode) has no tiers; a model not sold on flex is not asked.
        flex_offered=llm.structured_output == "json_schema" and pricing.offers_flex(model),
        standard_seconds=llm.timeout_for(limit),
    )
    prompt_tokens = estimate.prompt_tokens(call["messages"], model, call["schema"])
    for i, attempt in enumerate(attempts):
        # The rate-limit place is taken last, right before the request (see domain.rate_limits).
        async with (
            guard.spend(
                client_id=client_id,
                model=model,
                prompt_tokens=prompt_tokens,
                max_completion_tokens=limit,
                tier=attempt.tier,
            ) as spend,
            _rate_slot(limiter, model, prompt_tokens + limit) as slot,
        ):
            try:
                completion = await llm.complete_json(
                    **call, service_tier=attempt.tier.wire, timeout_seconds=attempt.timeout_seconds
                )
            except LLMError as err:
                await on_failure(err, attempt.tier)
                if i + 1 < len(attempts) and service_tiers.falls_back(err.kind):
                    continue
                raise
            slot.settle(completion.prompt_tokens + completion.completion_tokens)
            spend.settle(
                completion.prompt_tokens,
                completion.cached_tokens,
                completion.completion_tokens,
                price(model, completion),
            )
            out = await on_answer(completion, spend.settlement())
        return out, spend.settlement()
    raise AssertionError("call_attempts always returns a standard try")


def _rate_slot(limiter: RateLimiter | None, model: str, tokens: int) -> AbstractAsyncContextManager[Slot]:
    return limiter.hold(model, tokens) if limiter is not None else contextlib.nullcontext(Slot(None))
