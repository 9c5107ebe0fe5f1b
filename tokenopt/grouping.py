"""Which small, low-priority sections of one document share one call (a section group), and why.

Not the OpenAI Batch API (llm.batch_api): a section group is one ordinary chat call that answers
several sections at once (the technique named ``batching`` in WAVELAUNCH_DISABLED_TECHNIQUES).
A group sends the instructions, the client block, the context (a deliverable month's digest)
and each input field once instead of once per section; the answer is one JSON object with a
property per member (domain.outputs.schemas.group_json_schema). It is chosen only when the estimate
(tiktoken, before any call) of the one group call, prompt + schema + outputs, is below the
separate calls' by MIN_SAVING, so a group is never a bet on a saving it cannot show.

Candidates are low priority (a failed group costs a retry of what matters least), small (the
combined answer stays well inside one completion budget) and on the same routing tier (one
model per call) with the same context (a member never reads what its own prompt would not
carry). The activities ask this module; they do not re-decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.outputs.schemas import group_json_schema, output_model, strict_json_schema
from domain.sections import DocumentKind, SectionSpec, Tier
from tokenopt.budget import section_budget
from tokenopt.counting import count_tokens
from tokenopt.prompts import BuiltPrompt, build_group_prompt
from tokenopt.techniques import Technique, Techniques

# Low priority per document kind: the plan's priority 4-5 sections; a deliverable document's
# two boilerplate kinds (Templates/Tools and KPIs, priorities 5-6, both on the economy tier).
MIN_PRIORITY: dict[DocumentKind, int] = {DocumentKind.BUSINESS_PLAN: 4, DocumentKind.DELIVERABLE: 5}
# Small: a section whose answer is at most this many target tokens.
MAX_MEMBER_TARGET_TOKENS = 600
# The group asks for the sum of its members' completion budgets (twice their targets); that sum
# stays within this, far below every routed model's output limit.
MAX_GROUP_COMPLETION_TOKENS = 4096
# The group must save at least this share of the separate calls' estimated tokens: above the
# estimate's error (the stub bills with the same tokenizer; OpenAI's count of a schema differs by
# a few tokens), and enough to pay for the rare failed group. Measured: a plan's two sections
# save 2-3%, a deliverable month's boilerplate 18-36% (docs/benchmarks.md, "Batching").
MIN_SAVING = 0.02


@dataclass(frozen=True)
class Candidate:
    """A section still to generate, with the prompt ``generate_section`` would send it alone."""

    spec: SectionSpec
    tier: Tier
    prompt: BuiltPrompt
    # Text the prompt carries after the client block (a deliverable's digest), or "".
    context: str = ""


@dataclass(frozen=True)
class SectionGroup:
    keys: tuple[str, ...]
    # Estimated billed tokens (prompt with schema, plus the target outputs).
    separate_tokens: int
    grouped_tokens: int

    @property
    def saved_tokens(self) -> int:
        return self.separate_tokens - self.grouped_tokens


def schema_tokens(schema: dict[str, object], model: str) -> int:
    """The response schema's prompt tokens (it is billed as input, compact JSON)."""
    return count_tokens(json.dumps(schema, separators=(",", ":"), ensure_ascii=False), model)


def wrapper_tokens(keys: Sequence[str], model: str) -> int:
    """The answer's extra tokens for naming each member: ``{"key": ..., "key": ...}``."""
    return count_tokens("{" + ", ".join(f'"{k}": ' for k in keys) + "}", model)


def completion_budget(specs: Sequence[SectionSpec]) -> int:
    """max_completion_tokens of a group: the sum of its members' own budgets."""
    return sum(section_budget(s) for s in specs)


def eligible(candidate: Candidate, kind: DocumentKind) -> bool:
    """Low priority, small, and sent uncompressed (a compressed prompt is at its budget already)."""
    spec = candidate.spec
    return (
        spec.priority >= MIN_PRIORITY.get(kind, 99)
        and spec.target_tokens <= MAX_MEMBER_TARGET_TOKENS
        and not candidate.prompt.compression_steps
    )


def estimate(
    members: Sequence[Candidate],
    record: dict[str, object],
    *,
    kind: DocumentKind,
    techniques: Techniques,
    model: str,
) -> SectionGroup:
    """Estimated billed tokens of ``members`` as separate calls and as one group call."""
    separate = sum(
        m.prompt.estimated_tokens + schema_tokens(strict_json_schema(output_model(m.spec.key)), model) for m in members
    )
    outputs = sum(m.spec.target_tokens for m in members)
    keys = tuple(m.spec.key for m in members)
    prompt = build_group_prompt(
        record, [m.spec for m in members], model=model, techniques=techniques, context=members[0].context, kind=kind
    )
    grouped = prompt.estimated_tokens + schema_tokens(group_json_schema(keys), model) + wrapper_tokens(keys, model)
    return SectionGroup(keys, separate + outputs, grouped + outputs)


def choose_groups(
    candidates: Sequence[Candidate],
    record: dict[str, object],
    *,
    kind: DocumentKind,
    techniques: Techniques,
    model_for: Callable[[Tier], str],
    max_completion_tokens: int = MAX_GROUP_COMPLETION_TOKENS,
    min_saving: float = MIN_SAVING,
) -> list[SectionGroup]:
    """The groups to make among a document's sections still to generate (in reading order).

    Eligible sections are grouped by (tier, context) and packed in order while the group's
    completion budget stays within ``max_completion_tokens``; a pack of two or more is kept
    when its estimated saving is at least ``min_saving`` of the separate calls. Grouping needs
    the structured prompt (the group prompt is one), so either switch turns it off.
    """
    if not (techniques.on(Technique.BATCHING) and techniques.on(Technique.STRUCTURED_PROMPTS)):
        return []
    groups: dict[tuple[Tier, str], list[Candidate]] = {}
    for candidate in candidates:
        if eligible(candidate, kind):
            groups.setdefault((candidate.tier, candidate.context), []).append(candidate)
    chosen = []
    for (tier, _), members in groups.items():
        for pack in _packs(members, max_completion_tokens):
            if len(pack) < 2:
                continue
            group = estimate(pack, record, kind=kind, techniques=techniques, model=model_for(tier))
            if group.saved_tokens >= min_saving * group.separate_tokens:
                chosen.append(group)
    return chosen


def _packs(members: list[Candidate], cap: int) -> list[list[Candidate]]:
    packs: list[list[Candidate]] = []
    current: list[Candidate] = []
    for member in members:
        if current and completion_budget([m.spec for m in (*current, member)]) > cap:
            packs.append(current)
            current = []
        current.append(member)
    if current:
        packs.append(current)
    return packs
