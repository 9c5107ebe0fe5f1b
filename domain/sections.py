"""What a section is: the spec every catalogue builds, and the vocabulary specs are made of.

Each document kind has one catalogue (domain/catalogue/): the business plan's sections, the
deliverables' months, documents and section kinds, and the summaries. A spec there carries every
fact about its section: size, purpose, the client fields it reads, its routing tier, its cache
policy and its output model. Routing (tokenopt.routing), caching (domain.cache_policy), the
dependency set (tokenopt.reads) and output schemas (domain.outputs.schemas) ask the spec; none
keeps a table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel


class DocumentKind(StrEnum):
    BUSINESS_PLAN = "business_plan"
    DELIVERABLE = "deliverable"
    SUMMARY = "summary"


class Level(StrEnum):
    """How much of the business plan a request asks for: the sections up to a priority."""

    ESSENTIAL = "essential"
    STANDARD = "standard"
    COMPLETE = "complete"

    @property
    def max_priority(self) -> int:
        return {Level.ESSENTIAL: 2, Level.STANDARD: 3, Level.COMPLETE: 5}[self]


class Tier(StrEnum):
    """A section's routing tier: which of the configured models writes it (tokenopt.routing)."""

    ECONOMY = "economy"
    STANDARD = "standard"
    PREMIUM = "premium"

    def escalated(self) -> Tier | None:
        order = list(Tier)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None


@dataclass(frozen=True)
class CachePolicy:
    """What may be reused for a section, and how (domain.cache_policy reads it off the spec).

    Follows the seed: identical client-data regeneration, template-based content, reference
    material and boilerplate are cacheable; anything time-sensitive, dynamic data (prices,
    dates) and personalised recommendations flagged as such are not.
    """

    cacheable: bool = True
    # An earlier answer written from the same inputs under another prompt may be served.
    semantic: bool = True
    # A few changed facts may be patched into the earlier answer instead of a rewrite.
    patchable: bool = True
    reason: str = ""


# Fields every section of a client reads: the brand's identity, in the stable client block of
# every prompt (tokenopt.prompts), so a change to either touches every section (tokenopt.reads).
CORE_FIELDS = ("brandName", "industryNiche")


@dataclass(frozen=True, kw_only=True)
class SectionSpec:
    key: str
    title: str
    priority: int
    # Output tokens the section is written to (the stub answers with exactly that).
    target_tokens: int
    purpose: str
    # CRM field names (camelCase) this section reads beside CORE_FIELDS; nothing else reaches
    # its prompt (tokenopt.reads is the whole dependency set).
    fields: tuple[str, ...]
    # Complexity, not priority: reasoning-heavy sections get the strong model, structured
    # boilerplate the cheapest one.
    tier: Tier
    # What the model must return, as strict JSON (domain.outputs).
    output: type[BaseModel]
    cache: CachePolicy = CachePolicy()
    # Its prompt carries the compact digest of earlier months (deliverable kinds that build on them).
    uses_digest: bool = False
    schema_version: int = 1


class UnknownSection(ValueError):
    pass
