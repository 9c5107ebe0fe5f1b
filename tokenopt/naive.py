"""The naive way, as the seed did it: the counterfactual every saving is measured against.

One verbose prompt per document: a persona paragraph, the whole client record, and the request
for every section, sent to the top model with no cache. Nothing padded: this is the seed's
prompt, not a straw man.
"""

from __future__ import annotations

import json

from domain.sections import SectionSpec
from tokenopt.counting import count_messages
from tokenopt.projection import full_record

PERSONA = (
    "You are an expert business consultant and brand strategist with years of experience "
    "helping content creators and influencers turn their audiences into successful brands. "
    "You write comprehensive, professional and actionable business plans tailored to each "
    "creator's unique strengths, audience and goals."
)


def naive_messages(
    record: dict[str, object], sections: list[SectionSpec] | tuple[SectionSpec, ...], document: str = "business plan"
) -> list[dict[str, str]]:
    """The seed's one prompt for a whole document (a business plan, or one deliverable document)."""
    titles = ", ".join(s.title for s in sections)
    request = (
        "Here is the client's information:\n"
        f"{json.dumps(full_record(record), indent=2)}\n\n"
        f"Please write a detailed {document} for this client with the following sections: "
        f"{titles}. Make every section thorough, professional and specific to the client."
    )
    return [{"role": "system", "content": PERSONA}, {"role": "user", "content": request}]


def naive_prompt_tokens(record: dict[str, object], sections: list[SectionSpec], model: str) -> int:
    return count_messages(naive_messages(record, sections), model)


def section_share(spec: SectionSpec, sections: list[SectionSpec]) -> float:
    """A section's share of the naive document prompt, by its share of the output."""
    total = sum(s.target_tokens for s in sections)
    return spec.target_tokens / total if total else 0.0
