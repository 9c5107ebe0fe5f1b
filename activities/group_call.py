"""One model call for a section group (tokenopt.grouping): the call, each member validated
against its own schema, and one usage row per member. (Not the OpenAI Batch API: that is
llm.batch_api and activities.bulk.)

A member's row carries its share of the prompt (by the size of the prompt it would have sent
alone) and its own completion tokens (by the size of its part of the answer), so the rows add up
to the bill and each member's naive counterfactual is priced on its own output. What comes back
invalid is returned as a problem, not retried here: a second group call would pay again for the
members that were valid, so the caller writes the rest one by one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from activities.budget_guard import BudgetGuard
from activities.errors import as_application_error
from activities.ledger import SectionLedger
from activities.rate_limiter import RateLimiter
from activities.tiered_call import complete_on_tier, failed_completion
from activities.writer import Written, describe_invalid
from contracts.models import SectionResult
from domain.outputs.schemas import group_json_schema, group_schema_name, output_model
from domain.sections import SectionSpec, Tier
from llm.client import Completion, LLMClient
from llm.errors import LLMError
from storage.spool import KeptAnswer, Settlement
from tokenopt.counting import count_tokens
from tokenopt.grouping import completion_budget
from tokenopt.routing import ModelRouter
from tokenopt.service_tiers import ServiceTier

# The usage ledger's operation name: kept from when groups were called batches (rows carry it).
OPERATION = "generate_section_batch"


@dataclass(frozen=True)
class GroupMember:
    spec: SectionSpec
    ledger: SectionLedger
    # Tokens of the prompt the section would have sent alone: its share of the group prompt.
    own_prompt_tokens: int
    cache_key: str


@dataclass
class GroupOutcome:
    written: dict[str, Written] = field(default_factory=dict)
    # Member key -> why its part of the answer was not usable.
    problems: dict[str, str] = field(default_factory=dict)


def apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder): the parts add up exactly."""
    if not weights:
        return []
    if total <= 0:
        return [0] * len(weights)
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    raw = [total * w / whole for w in weights]
    parts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _parse(completion: Completion, members: list[GroupMember]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Valid member contents and the problems of the others."""
    if completion.finish_reason == "length":
        return {}, {m.spec.key: "output cut off at max_completion_tokens" for m in members}
    try:
        root = json.loads(completion.content)
    except ValueError as err:
        return {}, {m.spec.key: f"the group answer is not JSON: {err}" for m in members}
    if not isinstance(root, dict):
        return {}, {m.spec.key: "the group answer is not a JSON object" for m in members}
    contents, problems = {}, {}
    for m in members:
        try:
            contents[m.spec.key] = output_model(m.spec.key).model_validate(root.get(m.spec.key)).model_dump(mode="json")
        except ValidationError as err:
            problems[m.spec.key] = describe_invalid(err)
    return contents, problems


def _member_completions(completion: Completion, members: list[GroupMember]) -> list[Completion]:
    """The bill split per member: prompt and cached tokens by own prompt size, completion tokens
    by the size of each member's part of the answer (by its target when the answer is unusable)."""
    try:
        root = json.loads(completion.content)
    except ValueError:
        root = None
    if isinstance(root, dict) and all(m.spec.key in root for m in members):
        sizes = [count_tokens(json.dumps(root[m.spec.key], ensure_ascii=False), completion.model) for m in members]
    else:
        sizes = [m.spec.target_tokens for m in members]
    own = [m.own_prompt_tokens for m in members]
    prompts = apportion(completion.prompt_tokens, own)
    cached = apportion(completion.cached_tokens, own)
    outputs = apportion(completion.completion_tokens, sizes)
    return [
        Completion(
            "", completion.model, completion.finish_reason, p, c, o, completion.duration_ms, completion.service_tier
        )
        for p, c, o in zip(prompts, cached, outputs, strict=True)
    ]


async def write_group(
    llm: LLMClient,
    router: ModelRouter,
    client_id: str,
    tier: Tier,
    members: list[GroupMember],
    messages: list[dict[str, str]],
    guard: BudgetGuard,
    *,
    service_tier: ServiceTier = ServiceTier.STANDARD,
    deadline: datetime | None = None,
    limiter: RateLimiter | None = None,
) -> GroupOutcome:
    """One call answering every member, on the cheapest service tier ``deadline`` allows, its
    estimate held against the budgets while it runs; raises ApplicationError for LLM errors
    (after recording a failed row per member and try), else returns the valid members and the
    problems of the others."""
    model = router.model_for(tier)
    keys = [m.spec.key for m in members]
    schema = group_json_schema(keys)
    limit = completion_budget([m.spec for m in members])
    call = {
        "model": model,
        "messages": messages,
        "schema_name": group_schema_name(),
        "schema": schema,
        "max_completion_tokens": limit,
        "prompt_cache_key": f"client-{client_id}",
    }

    async def failed(err: LLMError, tried: ServiceTier) -> None:
        for m in members:
            failure = failed_completion(model, tried)
            await m.ledger.call(OPERATION, model, failure, success=False, tier=tier, error=str(err))

    async def record(completion: Completion, settlement: Settlement | None) -> GroupOutcome:
        # Each member's row and valid part are spooled and written before the reservation is
        # settled (every member's spool holds the one settlement; settling twice settles once).
        return await _record(completion, members, tier, model, settlement)

    try:
        outcome, settlement = await complete_on_tier(
            llm,
            guard,
            call,
            client_id=client_id,
            allowed=service_tier,
            deadline=deadline,
            price=members[0].ledger.cost,
            on_failure=failed,
            on_answer=record,
            limiter=limiter,
        )
    except LLMError as err:
        raise as_application_error(err) from None
    for m in members:
        m.ledger.settled(settlement)
    return outcome


async def _record(
    completion: Completion, members: list[GroupMember], tier: Tier, model: str, settlement: Settlement | None
) -> GroupOutcome:
    """Each member's part: its usage row, and its content when valid."""
    contents, problems = _parse(completion, members)
    outcome = GroupOutcome(problems=problems)
    for m, part in zip(members, _member_completions(completion, members), strict=True):
        key = m.spec.key
        ok = key in contents
        cost = m.ledger.cost(model, part)
        result = SectionResult(
            section_key=key,
            section_id=0,
            model=model,
            tier=tier,
            prompt_tokens=part.prompt_tokens,
            cached_tokens=part.cached_tokens,
            completion_tokens=part.completion_tokens,
            cost=cost,
            baseline_tokens=m.ledger.baseline.prompt_tokens + part.completion_tokens,
            baseline_cost=m.ledger.baseline.cost(part.completion_tokens),
            duration_ms=part.duration_ms,
            llm_calls=1,
            batch_size=len(members),
        )
        await m.ledger.call(
            OPERATION,
            model,
            part,
            success=ok,
            tier=tier,
            cache_key=m.cache_key,
            error=None if ok else f"invalid output in a section group of {len(members)}: {problems[key]}",
            settlement=settlement,
            answer=KeptAnswer(content=contents[key], figures=result.model_dump(mode="json")) if ok else None,
        )
        if ok:
            outcome.written[key] = Written(contents[key], result)
    return outcome
