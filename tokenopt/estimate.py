"""What a call may cost at most, before it is made: what a budget reserves.

Prompt tokens are counted with tiktoken (the messages in the chat format, plus the response
schema, which the provider bills as part of the prompt); the answer is counted at its
``max_completion_tokens``, and every prompt token at the uncached price. An upper bound, so a
budget holding it is never exceeded by a call it admitted, except where the estimate is short
(a tokenizer fallback; see tokenopt.counting).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenopt import pricing
from tokenopt.counting import count_messages, count_tokens
from tokenopt.service_tiers import ServiceTier


@dataclass(frozen=True)
class CallEstimate:
    tokens: int
    cost: Decimal


def prompt_tokens(messages: list[dict[str, str]], model: str, schema: dict[str, Any] | None = None) -> int:
    """The prompt's tokens as billed: the messages, and the JSON schema when one is sent."""
    total = count_messages(messages, model)
    if schema is not None:
        total += count_tokens(json.dumps(schema, separators=(",", ":"), ensure_ascii=False), model)
    return total


def estimate_call(
    model: str,
    *,
    prompt_tokens: int,
    max_completion_tokens: int,
    free_models: frozenset[str] = frozenset(),
    batch: bool = False,
    tier: ServiceTier = ServiceTier.STANDARD,
) -> CallEstimate:
    """The most a call can bill: its whole prompt uncached and its longest allowed answer, at the
    price of the tier it goes on (``batch``: the Batch API's)."""
    cost = pricing.cost(
        model,
        prompt_tokens=prompt_tokens,
        completion_tokens=max_completion_tokens,
        free_models=free_models,
        batch=batch,
        tier=tier,
    )
    return CallEstimate(prompt_tokens + max_completion_tokens, cost)


def estimate_body(
    body: dict[str, Any], *, free_models: frozenset[str] = frozenset(), batch: bool = False
) -> CallEstimate:
    """:func:`estimate_call` for a chat-completion request body (a Batch API line)."""
    model = body["model"]
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return estimate_call(
        model,
        prompt_tokens=prompt_tokens(body["messages"], model, schema),
        max_completion_tokens=limit,
        free_models=free_models,
        batch=batch,
    )


def answer_tokens(content: dict[str, Any], model: str) -> int:
    """What writing ``content`` again would take: its compact JSON's tokens (a reuse is credited
    with the stored answer's real size, not the catalogue's target)."""
    return count_tokens(json.dumps(content, separators=(",", ":"), ensure_ascii=False), model)
