"""Structured prompts: task, context (data only), format (the schema), constraints.

Layout is for provider prefix caching: what is identical for every call comes first (the
instructions), then what every section of one client shares (core identity), and the
per-section part last. No persona prose: it costs tokens on every call and buys nothing when the
output is schema-constrained. The format is the strict JSON schema sent as ``response_format``,
so it is not repeated in the text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from domain.sections import CORE_FIELDS, DocumentKind, SectionSpec
from tokenopt import budget
from tokenopt.budget import BudgetExceeded, Step
from tokenopt.counting import count_messages, count_tokens
from tokenopt.naive import PERSONA
from tokenopt.projection import project
from tokenopt.reads import SectionReads, reads
from tokenopt.techniques import Technique, Techniques

CONSTRAINTS = (
    "JSON per the schema.",
    "Use only the data given; write 'to be confirmed' for unknowns.",
    "Specific to this brand, plain sentences.",
)
SHORT_CONSTRAINTS = ("JSON per the schema.", "Use only the data given.")
SYSTEM_TEMPLATE = "Write one {document} section for a creator brand.\n{rules}"
# How the system line names each document kind.
DOCUMENT_LABELS = {DocumentKind.BUSINESS_PLAN: "business-plan", DocumentKind.DELIVERABLE: "deliverable"}


def _system(rules: tuple[str, ...], kind: DocumentKind) -> str:
    label = DOCUMENT_LABELS.get(kind, kind.value.replace("_", " "))
    return SYSTEM_TEMPLATE.format(document=label, rules="\n".join(f"- {c}" for c in rules))


# Few-shot examples per section, at most two. None by default: with a strict JSON schema the
# format is already fixed, and measured examples cost more tokens than they save in retries.
EXAMPLES: dict[str, tuple[str, ...]] = {}
MAX_EXAMPLES = 2


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[dict[str, str]]
    estimated_tokens: int
    # Hash of exactly what the section reads: equal hashes mean the same work (reuse).
    input_hash: str
    compression_steps: tuple[str, ...] = field(default=())
    # The projected field values the prompt was built from (before compression).
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def stable_prefix(self) -> str:
        """The system message plus the client block: byte-identical across a client's sections."""
        return self.messages[0]["content"] + "\n" + self.messages[1]["content"].split("\nINPUT\n")[0]


def approx_words(target_tokens: int) -> int:
    return round(target_tokens * 0.75 / 10) * 10


def section_inputs(
    record: dict[str, object],
    spec: SectionSpec,
    techniques: Techniques,
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> tuple[dict[str, str], dict[str, str]]:
    """(core, own): the shared identity block and the section's own fields, as tokenopt.reads
    says the section reads them."""
    read = reads(kind, spec, techniques)
    return project(record, CORE_FIELDS), project(record, read.own_fields)


def input_hash(
    read: SectionReads, core: dict[str, str], own: dict[str, str], techniques: Techniques, context: str = ""
) -> str:
    """Hash of the whole dependency set with its values: equal hashes mean the same work."""
    fields: dict[str, object] = {
        "section": read.section_key,
        "schema": read.schema_version,
        "prompt": read.prompt_version,
        "tier": read.tier.value,
        "techniques": techniques.fingerprint(),
        "inputs": {**core, **own},
    }
    if context:
        # Earlier months' digest: a section is not reused once what it builds on changed.
        fields["context"] = context
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _lines(values: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in values.items())


def _task(spec: SectionSpec) -> str:
    return (
        f"TASK\nWrite the {spec.title} section. {spec.purpose} About {approx_words(spec.target_tokens)} words in total."
    )


def _render(
    spec: SectionSpec,
    core: dict[str, str],
    own: dict[str, str],
    techniques: Techniques,
    examples: tuple[str, ...],
    short: bool,
    context: str = "",
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> list[dict[str, str]]:
    if not techniques.on(Technique.STRUCTURED_PROMPTS):
        # The seed's way, per section: persona prose and the data as indented JSON.
        background = f"{context}\n\n" if context else ""
        document = DOCUMENT_LABELS.get(kind, kind.value).replace("-", " ")
        request = (
            f"Here is the client's information:\n{json.dumps({**core, **own}, indent=2)}\n\n{background}"
            f"Please write the {spec.title} section of this client's {document}. {spec.purpose} "
            "Make it thorough, professional and specific to the client, and answer in the JSON format."
        )
        return [{"role": "system", "content": PERSONA}, {"role": "user", "content": request}]
    system = _system(SHORT_CONSTRAINTS if short else CONSTRAINTS, kind)
    client_block = "CLIENT\n" + (_lines(core) if core else "(no brand name yet)")
    if context:
        # Shared by the client's sections of one month: it stays in the stable prefix.
        client_block = f"{client_block}\n{context}"
    shots = "".join(f"\nEXAMPLE OUTPUT\n{e}" for e in examples[:MAX_EXAMPLES])
    data = f"INPUT\n{_lines(own) or '(none)'}"
    if techniques.on(Technique.PREFIX_LAYOUT):
        user = f"{client_block}\n{data}{shots}\n{_task(spec)}"
    else:
        # Variable part first: every call's prefix differs, so nothing can be cached.
        system = f"{_task(spec)}\n{system}"
        user = f"{data}\n{client_block}{shots}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _reference_repeats(values: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    out = {}
    for name, value in values.items():
        if value in seen:
            out[name] = f"(same as {seen[value]})"
        else:
            seen[value] = name
            out[name] = value
    return out


def build_section_prompt(
    record: dict[str, object],
    spec: SectionSpec,
    *,
    model: str,
    techniques: Techniques = Techniques(),
    context: str = "",
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> BuiltPrompt:
    """Messages for one section from a wire-format client record.

    ``context`` (e.g. the digest of earlier months) is placed right after the client block and
    is part of the input hash; ``kind`` names the document in the instructions.

    With budget compression on, a prompt over 40% of the section's budget is shrunk step by
    step (budget.ORDER) until it fits; one still over the hard limit raises BudgetExceeded
    before any call is made. The context is already bounded by its producer and compression
    cannot shorten it, so its tokens are allowed on top of the section's budget; so are the
    fields the section needs (domain.needs), which compression keeps whole: a long answer the
    section needs makes a longer prompt, never a refused section.
    """
    core, own = section_inputs(record, spec, techniques, kind)
    digest = input_hash(reads(kind, spec, techniques), core, own, techniques, context)
    examples = EXAMPLES.get(spec.key, ())
    short = False
    messages = _render(spec, core, own, techniques, examples, short, context, kind)
    tokens = count_messages(messages, model)
    allowance = count_tokens(context, model) if context else 0
    steps: list[str] = []
    inputs = {**core, **own}
    if not techniques.on(Technique.BUDGET_COMPRESSION):
        return BuiltPrompt(messages, tokens, digest, inputs=inputs)

    for step in budget.ORDER:
        if tokens - allowance <= budget.compress_threshold(spec):
            break
        before = (examples, own, short)
        if step is Step.DROP_EXAMPLES:
            examples = ()
        elif step is Step.SUMMARISE_LONG_FIELDS:
            own = budget.shorten_long_fields(own, budget.kept_whole(kind, spec.key))
        elif step is Step.REFERENCE_REPEATS:
            own = _reference_repeats(own)
        elif step is Step.SIMPLIFY_CONSTRAINTS:
            short = True
        if (examples, own, short) == before:
            continue  # the step had nothing to remove
        steps.append(step.value)
        messages = _render(spec, core, own, techniques, examples, short, context, kind)
        tokens = count_messages(messages, model)

    needed = budget.kept_whole(kind, spec.key)
    whole = count_tokens(_lines({k: v for k, v in own.items() if k in needed}), model)
    if tokens - allowance - whole > budget.hard_limit(spec):
        raise BudgetExceeded(
            f"section {spec.key}: the prompt needs {tokens} tokens after compression "
            f"({', '.join(steps) or 'no step applied'}); its budget is {budget.hard_limit(spec)}. "
            "Shorten the client's free-text fields."
        )
    return BuiltPrompt(messages, tokens, digest, tuple(steps), inputs)


def build_revision_prompt(
    spec: SectionSpec,
    current: dict[str, object],
    changed: dict[str, str],
    *,
    model: str,
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> BuiltPrompt:
    """The seed's "minor regeneration": a cached section plus the field delta, for a cheap model
    to revise instead of writing the section again from scratch."""
    system = _system((*CONSTRAINTS, "Change only what the new data affects."), kind)
    user = (
        f"CURRENT\n{json.dumps(current, separators=(',', ':'))}\n"
        f"CHANGED\n{_lines(changed) or '(formatting only)'}\n"
        f"TASK\nReturn the whole {spec.title} section as JSON, revised for the changed data."
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return BuiltPrompt(messages, count_messages(messages, model), input_hash="", inputs=dict(changed))


def build_group_prompt(
    record: dict[str, object],
    specs: list[SectionSpec],
    *,
    model: str,
    techniques: Techniques = Techniques(),
    context: str = "",
    kind: DocumentKind = DocumentKind.BUSINESS_PLAN,
) -> BuiltPrompt:
    """One prompt for several sections of a client (a section group, tokenopt.grouping): the instructions, the
    client block and the context once, then one request per section, each under its JSON key.

    Fields two or more members read are written once in the shared INPUT block; a field only
    one member reads stays with its request, so each section still sees (mostly) what it reads.
    """
    label = DOCUMENT_LABELS.get(kind, kind.value.replace("_", " "))
    system = _system(CONSTRAINTS, kind).replace(
        f"Write one {label} section", f"Write {len(specs)} {label} sections, each under its key,"
    )
    core: dict[str, str] = {}
    owns: list[dict[str, str]] = []
    for spec in specs:
        member_core, own = section_inputs(record, spec, techniques, kind)
        core.update(member_core)
        owns.append(own)
    readers: dict[str, int] = {}
    for own in owns:
        for name in own:
            readers[name] = readers.get(name, 0) + 1
    shared = {k: v for own in owns for k, v in own.items() if readers[k] > 1}
    client_block = "CLIENT\n" + (_lines(core) if core else "(no brand name yet)")
    if context:
        client_block = f"{client_block}\n{context}"
    parts = [client_block]
    if shared:
        parts.append(f"INPUT\n{_lines(shared)}")
    for spec, own in zip(specs, owns, strict=True):
        parts.append(_task(spec).replace("TASK\n", f"KEY {spec.key}\n", 1))
        if exclusive := {k: v for k, v in own.items() if readers[k] == 1}:
            parts.append(_lines(exclusive))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]
    inputs = {**core, **shared, **{k: v for own in owns for k, v in own.items()}}
    return BuiltPrompt(messages, count_messages(messages, model), input_hash="", inputs=inputs)
