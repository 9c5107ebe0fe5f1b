"""What a section reads: the one dependency set every reuse decision asks.

A section's answer depends on exactly what its prompt carries: the client fields (the shared
core block and the section's own), the digest of earlier months for the kinds that build on
them, the prompt and schema versions, and the routing tier that picks its model. The prompt
builder, the stored tier's key, the exact key, invalidation on a client update, the semantic
guard and ``regenerate --fields`` all take it from here, so none of them can disagree about
which sections a changed field touches. A spec declares what it reads (its fields, whether it
uses the digest, its tier); this module is where those become the set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.client import KNOWN_FIELDS
from domain.sections import CORE_FIELDS, DocumentKind, SectionSpec, Tier
from tokenopt.projection import NEVER_SENT
from tokenopt.routing import tier_for
from tokenopt.techniques import Technique, Techniques

# Bumped when the wording or layout of section prompts changes: no answer written under an
# older prompt is reused for a newer one.
PROMPT_VERSION = 4

# Every mapped field the naive way would send: what a prompt carries with compression off.
ALL_FIELDS = tuple(sorted(KNOWN_FIELDS - NEVER_SENT))


@dataclass(frozen=True)
class SectionReads:
    section_key: str
    # Client fields the prompt carries, core block first.
    fields: tuple[str, ...]
    # The digest of earlier months (deliverable kinds that build on them).
    earlier_months: bool
    schema_version: int
    prompt_version: int
    tier: Tier

    @property
    def own_fields(self) -> tuple[str, ...]:
        """The fields after the core block (the section's INPUT block)."""
        return tuple(f for f in self.fields if f not in CORE_FIELDS)

    def carries(self, changed: Iterable[str]) -> bool:
        return not set(changed).isdisjoint(self.fields)


def reads(kind: DocumentKind, spec: SectionSpec, techniques: Techniques = Techniques()) -> SectionReads:
    """The dependency set of ``spec`` (a business-plan section or a concrete deliverable section)."""
    own = spec.fields if techniques.on(Technique.CONTEXT_COMPRESSION) else ALL_FIELDS
    earlier = kind is DocumentKind.DELIVERABLE and spec.uses_digest
    return SectionReads(
        section_key=spec.key,
        fields=tuple(dict.fromkeys((*CORE_FIELDS, *own))),
        earlier_months=earlier,
        schema_version=spec.schema_version,
        prompt_version=PROMPT_VERSION,
        tier=tier_for(spec.key) if techniques.on(Technique.ROUTING) else Tier.PREMIUM,
    )


def sections_reading(
    kind: DocumentKind,
    specs: Iterable[SectionSpec],
    fields: Iterable[str],
    techniques: Techniques = Techniques(),
) -> list[SectionSpec]:
    """Those of ``specs`` whose prompts carry any of ``fields``."""
    changed = set(fields)
    return [s for s in specs if reads(kind, s, techniques).carries(changed)]


def plan_sections_reading(fields: Iterable[str], techniques: Techniques = Techniques()) -> list[SectionSpec]:
    return sections_reading(DocumentKind.BUSINESS_PLAN, BUSINESS_PLAN_SECTIONS, fields, techniques)


def month_sections_reading(
    month: int, fields: Iterable[str], techniques: Techniques = Techniques()
) -> list[SectionSpec]:
    return sections_reading(DocumentKind.DELIVERABLE, deliverables.month_sections(month), fields, techniques)


def all_section_keys_reading(fields: Iterable[str], techniques: Techniques = Techniques()) -> list[str]:
    """Every plan and deliverable section key (all months) whose prompt carries any of ``fields``."""
    keys = [s.key for s in plan_sections_reading(fields, techniques)]
    for m in deliverables.months():
        keys += [s.key for s in month_sections_reading(m.number, fields, techniques) if s.key not in keys]
    return keys
