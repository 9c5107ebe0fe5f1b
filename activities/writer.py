"""One section written by a model: the call, validation against the schema, the cascade.

Invalid answers are retried here, counted in answers rather than Temporal attempts (a section
that was rate-limited twice keeps its three chances at a valid answer); the first retry goes to
the next model tier up when routing chose a cheaper one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from activities.budget_guard import BudgetGuard
from activities.errors import as_application_error
from activities.ledger import SectionLedger
from activities.rate_limiter import RateLimiter
from activities.tiered_call import complete_on_tier, failed_completion
from contracts.models import SectionResult
from domain.cache_policy import CacheTier
from domain.outputs.schemas import SectionPatch, output_model, schema_name, strict_json_schema
from domain.sections import SectionSpec, Tier
from llm.client import Completion, LLMClient
from llm.errors import InvalidModelOutput, LLMError
from storage.spool import KeptAnswer, Settlement
from tokenopt.patches import PatchRejected, apply_patch
from tokenopt.routing import ModelRouter
from tokenopt.service_tiers import ServiceTier

MAX_OUTPUT_ATTEMPTS = 3
T = TypeVar("T")


class OutputRejected(Exception):
    """Every attempt returned output that does not match the section's schema."""


@dataclass(frozen=True)
class AnswerForm:
    """What a call asks the model for and how its answer is read, when it is not the section
    itself (a patch of it)."""

    schema_name: str
    schema: dict[str, Any]
    max_completion_tokens: int
    # The answer's content from a finished completion; raises InvalidModelOutput.
    parse: Callable[[Completion], dict[str, Any]]
    # What the naive way would have written instead: the whole section.
    counterfactual_completion_tokens: int


@dataclass
class Written:
    content: dict[str, Any]
    result: SectionResult

    @classmethod
    def kept(cls, answer: KeptAnswer) -> Written:
        """An answer an earlier attempt bought and spooled (``SectionLedger.recover``)."""
        return cls(answer.content, SectionResult.model_validate(answer.figures))


def describe_invalid(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        return f"{err.error_count()} schema error(s), first at {where}: {first['msg']}"
    return str(err)


def parse_answer(spec: SectionSpec, completion: Completion) -> dict[str, Any]:
    """The answer's content if it is complete, valid JSON for the section's schema; raises
    InvalidModelOutput saying what is wrong (a direct call and a Batch API line alike)."""
    if completion.finish_reason == "length":
        raise InvalidModelOutput("output cut off at max_completion_tokens")
    try:
        return output_model(spec.key).model_validate_json(completion.content).model_dump(mode="json")
    except ValidationError as err:
        raise InvalidModelOutput(describe_invalid(err)) from None


def patch_parser(spec: SectionSpec, current: dict[str, Any]) -> Callable[[Completion], dict[str, Any]]:
    """How a patch answer is read: a valid patch, applied to ``current``, giving a valid section
    that replaces at most half of it; raises InvalidModelOutput saying what is wrong."""

    def parse(completion: Completion) -> dict[str, Any]:
        if completion.finish_reason == "length":
            raise InvalidModelOutput("patch cut off at max_completion_tokens")
        try:
            patch = SectionPatch.model_validate_json(completion.content)
            patched = apply_patch(current, patch)
            return output_model(spec.key).model_validate(patched).model_dump(mode="json")
        except ValidationError as err:
            raise InvalidModelOutput(describe_invalid(err)) from None
        except PatchRejected as err:
            raise InvalidModelOutput(str(err)) from None

    return parse


class SectionWriter:
    def __init__(
        self,
        llm: LLMClient,
        router: ModelRouter,
        ledger: SectionLedger,
        client_id: str,
        guard: BudgetGuard,
        *,
        service_tier: ServiceTier = ServiceTier.STANDARD,
        deadline: datetime | None = None,
        limiter: RateLimiter | None = None,
    ):
        self.llm = llm
        self.router = router
        self.ledger = ledger
        self.client_id = client_id
        # Every call reserves its upper-bound cost against the budgets first.
        self.guard = guard
        # The cheapest tier the work's deadline allows (tokenopt.service_tiers), and the deadline.
        self.service_tier = service_tier
        self.deadline = deadline
        # The provider's per-model limits, shared by every worker (None: not held).
        self.limiter = limiter

    async def write(
        self,
        spec: SectionSpec,
        tier: Tier,
        messages_for: Callable[[str], tuple[list[dict[str, str]], list[str]]],
        *,
        operation: str,
        cache_tier: CacheTier = CacheTier.NONE,
        cache_key: str | None = None,
        attempts: int = MAX_OUTPUT_ATTEMPTS,
        form: AnswerForm | None = None,
    ) -> Written:
        """Call the model until it returns valid JSON for ``spec`` (at most ``attempts`` answers).

        ``messages_for(model)`` builds the prompt for the model in use (and names the compression
        steps applied). Raises ApplicationError for LLM errors and OutputRejected when every
        answer was invalid; each call is a usage row either way. ``form`` asks for something other
        than the section (a patch), read by its own parser.
        """
        counterfactual = form.counterfactual_completion_tokens if form else None
        totals = SectionResult(section_key=spec.key, section_id=0, model="", tier=tier, cache_tier=cache_tier)
        problems: list[str] = []
        for attempt in range(1, attempts + 1):
            model = self.router.model_for(tier)
            messages, steps = messages_for(model)
            totals.compression_steps = steps

            async def record(
                completion: Completion,
                settlement: Settlement | None,
                model: str = model,
                tier: Tier = tier,
                attempt: int = attempt,
                steps: list[str] = steps,
            ) -> dict[str, Any] | None:
                """The answer's content (None: invalid), its usage row spooled and written."""
                self._add(totals, completion, model)
                try:
                    content = form.parse(completion) if form else parse_answer(spec, completion)
                except InvalidModelOutput as err:
                    problems.append(f"attempt {attempt} ({model}): {err}")
                    await self.ledger.call(
                        operation,
                        model,
                        completion,
                        success=False,
                        tier=tier.value,
                        cache_tier=cache_tier,
                        cache_key=cache_key,
                        error=f"invalid output: {err}",
                        escalated=totals.escalated,
                        settlement=settlement,
                    )
                    return None
                totals.model, totals.tier = model, tier
                naive_completion = completion.completion_tokens if counterfactual is None else counterfactual
                totals.baseline_tokens = self.ledger.baseline.prompt_tokens + naive_completion
                totals.baseline_cost = self.ledger.baseline.cost(naive_completion)
                await self.ledger.call(
                    operation,
                    model,
                    completion,
                    success=True,
                    tier=tier.value,
                    cache_tier=cache_tier,
                    cache_key=cache_key,
                    escalated=totals.escalated,
                    steps=steps,
                    counterfactual_completion_tokens=counterfactual,
                    settlement=settlement,
                    # Kept with its row until the caller has stored it (``ledger.release``).
                    answer=KeptAnswer(content=content, figures=totals.model_dump(mode="json")),
                )
                return content

            content = await self._call(spec, model, tier, messages, operation, record, form)
            if content is not None:
                return Written(content, totals)
            # The cascade: a cheap model's bad answer goes once to the next tier up.
            if attempt == 1 and (up := tier.escalated()) and self.router.model_for(up) != model:
                tier = up
                totals.escalated = True
        raise OutputRejected(
            f"section {spec.key}: the model returned invalid JSON {attempts} times (" + "; ".join(problems) + ")"
        )

    def call_kwargs(
        self, spec: SectionSpec, model: str, messages: list[dict[str, str]], form: AnswerForm | None = None
    ) -> dict[str, Any]:
        """What a section's call asks for: the model, the prompt, the strict schema, the limit and
        the client's prompt cache key (``LLMClient.complete_json`` and ``request_body`` take it)."""
        if form is not None:
            answer = {
                "schema_name": form.schema_name,
                "schema": form.schema,
                "max_completion_tokens": form.max_completion_tokens,
            }
        else:
            answer = {
                "schema_name": schema_name(spec.key, spec.schema_version),
                "schema": strict_json_schema(output_model(spec.key)),
                # Room above the target so a good answer is never cut off.
                "max_completion_tokens": spec.target_tokens * 2,
            }
        return {"model": model, "messages": messages, **answer, "prompt_cache_key": f"client-{self.client_id}"}

    async def _call(
        self,
        spec: SectionSpec,
        model: str,
        tier: Tier,
        messages: list[dict[str, str]],
        operation: str,
        record: Callable[[Completion, Settlement | None], Awaitable[T]],
        form: AnswerForm | None = None,
    ) -> T:
        """One call under its budget reservation; ``record`` reads and records the answer before
        the reservation is settled, so the spool holds the answer from the moment it arrives."""
        kwargs = self.call_kwargs(spec, model, messages, form)

        async def failed(err: LLMError, tried: ServiceTier) -> None:
            failure = failed_completion(model, tried)
            await self.ledger.call(operation, model, failure, success=False, tier=tier.value, error=str(err))

        try:
            out, settlement = await complete_on_tier(
                self.llm,
                self.guard,
                kwargs,
                client_id=self.client_id,
                allowed=self.service_tier,
                deadline=self.deadline,
                price=self.ledger.cost,
                on_failure=failed,
                on_answer=record,
                limiter=self.limiter,
            )
        except LLMError as err:
            raise as_application_error(err) from None
        self.ledger.settled(settlement)
        return out

    def _add(self, totals: SectionResult, completion: Completion, model: str) -> None:
        totals.prompt_tokens += completion.prompt_tokens
        totals.cached_tokens += completion.cached_tokens
        totals.completion_tokens += completion.completion_tokens
        totals.cost += self.ledger.cost(model, completion)
        totals.duration_ms += completion.duration_ms
        totals.llm_calls += 1
