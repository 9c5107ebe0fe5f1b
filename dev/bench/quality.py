"""Output quality: our sections against the reference way, judged pairwise with positions swapped.

For a sample of sections and clients, each section is written twice:

- **ours**: the routed model (tokenopt.routing) and the projected, compressed prompt
  (tokenopt.prompts.build_section_prompt with every technique on);
- **reference**: the top model (``WAVELAUNCH_NAIVE_MODEL``) and the seed's prompt with the full
  record (the same builder with the prompt-shaping techniques off).

A judge model compares each pair twice, once with ours as A and once as B, on a rubric (uses the
client's facts correctly, covers the section's purpose, specific rather than generic, invents no
figures) and answers in a strict JSON schema. A pair is a win or a loss only when both orders
agree; otherwise a tie, and position-inconsistent. Apart from the judge, each output is checked
for the facts its section needs (tokenopt.fidelity applied to domain.needs).

Direct calls through the official client (``AsyncOpenAI(max_retries=0)`` plus a small retry for
429/5xx): no Temporal, no database. Against the project's stub the verdicts are mechanical (it
fills schemas with filler text and picks enum values at random); the report says so.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field

from bench.totals import Totals
from bench.workload import make_clients
from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, section
from domain.needs import needed_fields
from domain.outputs.schemas import output_model, schema_name, strict_json_schema
from domain.sections import DocumentKind, SectionSpec, UnknownSection
from service.settings import Settings
from tokenopt import pricing
from tokenopt.fidelity import FactKind, field_facts, found, prompt_text
from tokenopt.projection import full_record
from tokenopt.prompts import build_section_prompt
from tokenopt.routing import ModelRouter, tier_for
from tokenopt.techniques import Technique, Techniques

# One section per routing tier and document kind: the premium, standard and economy models all
# get judged, on a business plan and on a deliverable.
DEFAULT_SECTIONS = (
    "executive_summary",
    "market_analysis",
    "operations_plan",
    "m1_brand_architecture__framework_strategy",
    "m1_brand_architecture__sops_workflows",
    "m1_brand_architecture__templates_tools",
)
# The seed's way: persona prose, the full record as JSON, no compression.
REFERENCE_TECHNIQUES = Techniques.without(
    [
        Technique.STRUCTURED_PROMPTS,
        Technique.CONTEXT_COMPRESSION,
        Technique.BUDGET_COMPRESSION,
        Technique.PREFIX_LAYOUT,
    ]
)
JUDGE_SCHEMA = "quality_verdict_v1"
JUDGE_MAX_TOKENS = 600
RETRIES = 3
STUB_FINGERPRINT = "fp_stub"
MECHANICAL_NOTE = (
    "The endpoint is the project's LLM stub: it fills every schema with filler text and picks the "
    "judge's verdicts at random, so these verdicts are mechanical, not a measure of quality. "
    "Run against a real endpoint (OPENAI_API_KEY, OPENAI_BASE_URL) to measure."
)

Choice = Literal["A", "B", "tie"]
Outcome = Literal["win", "tie", "loss"]


class QualityError(ValueError):
    """A request for the evaluation that cannot run (no endpoint, an unknown section)."""


class JudgeVerdict(BaseModel):
    """The judge's answer: which output is better on each criterion, and overall."""

    model_config = ConfigDict(extra="forbid")

    uses_facts: Choice = Field(description="which output uses the client's facts correctly")
    covers_purpose: Choice = Field(description="which output covers the section's purpose")
    specific: Choice = Field(description="which output is specific to this client rather than generic")
    no_invented_figures: Choice = Field(description="which output invents fewer figures not in the data")
    winner: Choice
    reason: str = Field(description="one or two sentences")


JUDGE_SYSTEM = (
    "You compare two drafts of one section of a document a studio writes for a creator brand.\n"
    "Judge on: (1) uses the client's facts correctly, (2) covers the section's purpose, "
    "(3) specific to this client rather than generic, (4) invents no figures the data does not give.\n"
    "The order of the drafts means nothing; length is no merit. Answer 'tie' when neither is "
    "better. JSON per the schema."
)


class Spend(Totals):
    """One side's calls in the evaluation (ours, the reference, the judge)."""

    def add(self, model: str, usage: Any, free_models: frozenset[str]) -> None:
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        details = getattr(usage, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
        completion = getattr(usage, "completion_tokens", 0) or 0
        self.calls += 1
        self.prompt_tokens += prompt
        self.cached_tokens += cached
        self.completion_tokens += completion
        self.cost += pricing.cost(
            model, prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, free_models=free_models
        )


@dataclass
class Caller:
    """Structured calls with a small retry for 429 and 5xx (the evaluation has no Temporal)."""

    client: AsyncOpenAI
    free_models: frozenset[str]
    fingerprints: set[str] = field(default_factory=set)

    async def json(
        self, model: str, messages: list[dict[str, str]], name: str, schema: dict[str, Any], limit: int, spend: Spend
    ) -> dict[str, Any]:
        for attempt in range(1, RETRIES + 1):
            try:
                response = await self.client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": name, "schema": schema, "strict": True},
                    },
                    max_completion_tokens=limit,
                )
                break
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as err:
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(_retry_after(err, attempt))
        spend.add(model, response.usage, self.free_models)
        if response.system_fingerprint:
            self.fingerprints.add(response.system_fingerprint)
        content = response.choices[0].message.content or ""
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        return parsed if isinstance(parsed, dict) else {}


def _retry_after(err: Exception, attempt: int) -> float:
    response = getattr(err, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(header), 30.0) if header else float(2**attempt)
    except ValueError:
        return float(2**attempt)


def resolve_sections(keys: list[str] | None) -> list[tuple[SectionSpec, DocumentKind]]:
    """The sections to evaluate (business-plan or deliverable keys); raises QualityError."""
    out = []
    for key in keys or DEFAULT_SECTIONS:
        try:
            out.append((section(key), DocumentKind.BUSINESS_PLAN))
        except UnknownSection:
            try:
                out.append((deliverables.section_spec(key), DocumentKind.DELIVERABLE))
            except UnknownSection as err:
                known = ", ".join(s.key for s in BUSINESS_PLAN_SECTIONS)
                raise QualityError(f"{err}; business-plan sections: {known}") from None
    return out


def coverage(output: dict[str, Any], record: dict[str, Any], kind: DocumentKind, key: str) -> tuple[int, int]:
    """(needed facts found in the output, needed facts): does the text use what it was given?
    Figures, dates and names only: a good section paraphrases the client's clauses, but a figure
    or a name it uses is written as given."""
    required = [f for f in field_facts(record, needed_fields(kind, key)) if f.kind is not FactKind.ITEM]
    text = prompt_text([{"content": json.dumps(output, ensure_ascii=False)}])
    return sum(found(f, text) for f in required), len(required)


def judge_messages(record: dict[str, Any], spec: SectionSpec, first: dict[str, Any], second: dict[str, Any]) -> list:
    data = json.dumps(full_record(record), separators=(",", ":"), ensure_ascii=False)
    user = (
        f"CLIENT DATA\n{data}\nSECTION\n{spec.title}: {spec.purpose}\n"
        f"DRAFT A\n{json.dumps(first, ensure_ascii=False)}\nDRAFT B\n{json.dumps(second, ensure_ascii=False)}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def ours_outcome(choice: str, ours_is: Literal["A", "B"]) -> Outcome:
    if choice not in ("A", "B"):
        return "tie"
    return "win" if choice == ours_is else "loss"


def combine(first: Outcome, second: Outcome) -> tuple[Outcome, bool]:
    """One pair's outcome from its two orders, and whether they agree: a win or a loss needs both
    orders (or one and a tie); opposite verdicts are a position effect, counted as a tie."""
    if first == second:
        return first, True
    if "tie" in (first, second):
        return (first if second == "tie" else second), False
    return "tie", False


async def evaluate_pair(
    caller: Caller,
    router: ModelRouter,
    settings: Settings,
    judge: str,
    record: dict[str, Any],
    spec: SectionSpec,
    kind: DocumentKind,
    spend: dict[str, Spend],
) -> dict[str, Any]:
    routed = router.model_for(tier_for(spec.key))
    reference_model = settings.naive_model
    name, schema = schema_name(spec.key, spec.schema_version), strict_json_schema(output_model(spec.key))
    limit = spec.target_tokens * 2
    ours_prompt = build_section_prompt(record, spec, model=routed, kind=kind)
    ref_prompt = build_section_prompt(record, spec, model=reference_model, techniques=REFERENCE_TECHNIQUES, kind=kind)
    ours, reference = await asyncio.gather(
        caller.json(routed, ours_prompt.messages, name, schema, limit, spend["ours"]),
        caller.json(reference_model, ref_prompt.messages, name, schema, limit, spend["reference"]),
    )
    verdict_schema = strict_json_schema(JudgeVerdict)
    a_first, b_first = await asyncio.gather(
        caller.json(
            judge,
            judge_messages(record, spec, ours, reference),
            JUDGE_SCHEMA,
            verdict_schema,
            JUDGE_MAX_TOKENS,
            spend["judge"],
        ),
        caller.json(
            judge,
            judge_messages(record, spec, reference, ours),
            JUDGE_SCHEMA,
            verdict_schema,
            JUDGE_MAX_TOKENS,
            spend["judge"],
        ),
    )
    orders = [("ours_as_A", ours_outcome(str(a_first.get("winner")), "A"), a_first)]
    orders.append(("ours_as_B", ours_outcome(str(b_first.get("winner")), "B"), b_first))
    outcome, consistent = combine(orders[0][1], orders[1][1])
    ours_found, needed = coverage(ours, record, kind, spec.key)
    ref_found, _ = coverage(reference, record, kind, spec.key)
    return {
        "client": record["id"],
        "section": spec.key,
        "routed_model": routed,
        "reference_model": reference_model,
        "outcome": outcome,
        "position_consistent": consistent,
        "verdicts": [
            {"order": order, "ours": result, **{k: v.get(k) for k in ("winner", "uses_facts", "covers_purpose")}}
            for order, result, v in orders
        ],
        "needed_facts": needed,
        "coverage": {"ours": ours_found, "reference": ref_found},
    }


def _tally(pairs: list[dict[str, Any]], by: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"win": 0, "tie": 0, "loss": 0, "pairs": 0})
    for p in pairs:
        row = out[p[by]]
        row[p["outcome"]] += 1
        row["pairs"] += 1
    return dict(sorted(out.items()))


def report(
    pairs: list[dict[str, Any]], spend: dict[str, Spend], *, endpoint: str, judge: str, mechanical: bool
) -> dict:
    needed = sum(p["needed_facts"] for p in pairs)

    def ratio(side: str) -> float | None:
        return round(sum(p["coverage"][side] for p in pairs) / needed, 4) if needed else None

    total = {o: sum(1 for p in pairs if p["outcome"] == o) for o in ("win", "tie", "loss")}
    return {
        "endpoint": endpoint,
        "mechanical": mechanical,
        "note": MECHANICAL_NOTE if mechanical else None,
        "judge": judge,
        "pairs_evaluated": len(pairs),
        "judge_calls_per_pair": 2,
        "total": total,
        "by_section": _tally(pairs, "section"),
        "by_routed_model": _tally(pairs, "routed_model"),
        "position_consistency": round(sum(p["position_consistent"] for p in pairs) / len(pairs), 4) if pairs else None,
        "fact_coverage": {"needed": needed, "ours": ratio("ours"), "reference": ratio("reference")},
        "spend": {side: s.as_dict() for side, s in spend.items()},
        "pairs": pairs,
    }


async def run(
    settings: Settings,
    *,
    sections: list[str] | None = None,
    clients: int = 2,
    judge: str | None = None,
    seed: int = 7,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Write, judge and check ``sections`` x ``clients`` pairs; the report as a dict."""
    if settings.openai_api_key is None:
        raise QualityError("eval quality needs an OpenAI-compatible endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL)")
    if clients < 1:
        raise QualityError("--clients must be at least 1")
    chosen = resolve_sections(sections)
    judge_model = judge or settings.naive_model
    router = ModelRouter(
        premium=settings.model_premium,
        standard=settings.model_standard,
        economy=settings.model_economy,
        override=settings.model_override,
    )
    free = frozenset(settings.free_models)
    pricing.check_priced(router.models() | {settings.naive_model, judge_model}, set(free))
    client = AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.llm_timeout_seconds,
    )
    caller = Caller(client, free)
    spend = {"ours": Spend(), "reference": Spend(), "judge": Spend()}
    records = make_clients(clients, seed)
    random.Random(seed).shuffle(records)
    gate = asyncio.Semaphore(concurrency)

    async def one(record: dict[str, Any], spec: SectionSpec, kind: DocumentKind) -> dict[str, Any]:
        async with gate:
            return await evaluate_pair(caller, router, settings, judge_model, record, spec, kind, spend)

    try:
        pairs = await asyncio.gather(*(one(r, s, k) for r in records for s, k in chosen))
    finally:
        await client.close()
    endpoint = str(client.base_url).rstrip("/")
    return report(
        list(pairs), spend, endpoint=endpoint, judge=judge_model, mechanical=STUB_FINGERPRINT in caller.fingerprints
    )


def table(result: dict[str, Any]) -> Any:
    """The report as a Rich table: outcomes per section and per routed model, then spend."""
    from rich.table import Table

    title = f"Output quality: ours vs reference (judge {result['judge']}, {result['endpoint']})"
    if result["mechanical"]:
        title += " — MECHANICAL (stub)"
    t = Table(title=title, title_justify="left")
    for column in ("group", "pairs", "win", "tie", "loss"):
        t.add_column(column, justify="left" if column == "group" else "right")
    for label, rows in (("section", result["by_section"]), ("model", result["by_routed_model"])):
        for name, row in rows.items():
            t.add_row(f"{label} {name}", str(row["pairs"]), str(row["win"]), str(row["tie"]), str(row["loss"]))
    total = result["total"]
    t.add_row("total", str(result["pairs_evaluated"]), str(total["win"]), str(total["tie"]), str(total["loss"]))
    return t
