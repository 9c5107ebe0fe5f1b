"""Structured prompts: task, context (data only), format (the schema), constraints.

Layout is for provider prefix caching: what is identical for every call comes first (the
instructions), then what is shared by every section of one client (core identity), and the
per-section part last. No persona prose: it costs tokens on every call and buys nothing when the
output is schema-constrained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.sections import SectionSpec
from tokenopt.counting import count_messages
from tokenopt.projection import project, truncate_sentences

PROMPT_VERSION = 1

# Fields every section of a client shares; they sit in the stable client block.
CORE_FIELDS = ("brandName", "industryNiche")

CONSTRAINTS = (
    "Reply with JSON only, matching the schema.",
    "Use only the client data given; say 'to be confirmed' rather than invent facts.",
    "Be specific to this brand; no generic filler.",
    "Plain sentences, no markdown.",
)
SHORT_CONSTRAINTS = ("JSON only, per schema.", "Use only given data.")

SYSTEM_TEMPLATE = "You write sections of business plans for creator brands.\nRules:\n{rules}"


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[dict[str, str]]
    estimated_tokens: int
    compression_steps: tuple[str, ...] = field(default=())

    @property
    def stable_prefix(self) -> str:
        """The system message plus the client block: byte-identical across a client's sections."""
        return self.messages[0]["content"] + "\n" + self.messages[1]["content"].split("\nINPUT\n")[0]


def _lines(values: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in values.items())


def _system(constraints: tuple[str, ...]) -> str:
    return SYSTEM_TEMPLATE.format(rules="\n".join(f"- {c}" for c in constraints))


def approx_words(target_tokens: int) -> int:
    return round(target_tokens * 0.75 / 10) * 10


def build_section_prompt(
    record: dict[str, object],
    spec: SectionSpec,
    *,
    model: str,
    field_char_limit: int | None = None,
    short_constraints: bool = False,
) -> BuiltPrompt:
    """Messages for one section from a wire-format client record."""
    core = project(record, CORE_FIELDS)
    own = project(record, [f for f in spec.fields if f not in CORE_FIELDS])
    if field_char_limit:
        own = {k: truncate_sentences(v, field_char_limit) for k, v in own.items()}
    client_block = "CLIENT\n" + (_lines(core) if core else "(no brand name yet)")
    task = (
        f"TASK\nWrite the {spec.title} section. {spec.purpose} "
        f"About {approx_words(spec.target_tokens)} words in total."
    )
    user = f"{client_block}\nINPUT\n{_lines(own) or '(none)'}\n{task}"
    messages = [
        {"role": "system", "content": _system(SHORT_CONSTRAINTS if short_constraints else CONSTRAINTS)},
        {"role": "user", "content": user},
    ]
    return BuiltPrompt(messages, count_messages(messages, model))
