"""The section catalogue: which sections a document has, their priority, size and inputs.

This module is the one place that knows the business plan's sections (DESIGN.md §3) and which
client fields each one reads. Routing, caching, projection and differential regeneration ask
it; none of them re-decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.limits import quote


class DocumentKind(StrEnum):
    BUSINESS_PLAN = "business_plan"
    DELIVERABLE = "deliverable"
    SUMMARY = "summary"


class Level(StrEnum):
    ESSENTIAL = "essential"
    STANDARD = "standard"
    COMPLETE = "complete"

    @property
    def max_priority(self) -> int:
        return {Level.ESSENTIAL: 2, Level.STANDARD: 3, Level.COMPLETE: 5}[self]


# Fields every section of a client reads: the brand's identity, in the stable client block of
# every prompt (tokenopt.prompts), so a change to either touches every section (tokenopt.reads).
CORE_FIELDS = ("brandName", "industryNiche")


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    priority: int
    target_tokens: int
    purpose: str
    # CRM field names (camelCase) this section reads beside CORE_FIELDS; nothing else reaches
    # its prompt (tokenopt.reads is the whole dependency set).
    fields: tuple[str, ...]
    schema_version: int = 1


BUSINESS_PLAN_SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(
        "executive_summary",
        "Executive Summary",
        1,
        500,
        "Summarise the venture: what it sells, to whom, why it wins and what it aims for.",
        (
            "fullName",
            "brandName",
            "industryNiche",
            "visionForVenture",
            "hopeToAchieve",
            "targetAudience",
            "uniqueValueProps",
            "productCategories",
            "longTermVision",
        ),
    ),
    SectionSpec(
        "market_analysis",
        "Market Analysis",
        2,
        800,
        "Size and segment the market, name the trends and the audience's pain points.",
        (
            "industryNiche",
            "country",
            "targetAudience",
            "demographicProfile",
            "targetDemographicAge",
            "audienceGenderSplit",
            "audienceMaritalStatus",
            "keyPainPoints",
        ),
    ),
    SectionSpec(
        "competitive_landscape",
        "Competitive Landscape",
        2,
        600,
        "Map direct and emerging competitors and how the brand stands apart.",
        (
            "brandName",
            "industryNiche",
            "differentiation",
            "uniqueValueProps",
            "emergingCompetitors",
            "inspirationBrands",
        ),
    ),
    SectionSpec(
        "product_services",
        "Products and Services",
        3,
        700,
        "Define the product line, price points and the launch order.",
        (
            "brandName",
            "productCategories",
            "otherProductIdeas",
            "keyPainPoints",
            "brandValues",
            "uniqueValueProps",
        ),
    ),
    SectionSpec(
        "marketing_strategy",
        "Marketing Strategy",
        3,
        900,
        "Plan positioning, channels, content pillars and the launch campaign.",
        (
            "brandName",
            "instagramHandle",
            "tiktokHandle",
            "currentChannels",
            "targetAudience",
            "brandPersonality",
            "emotionsBrandEvokes",
            "idealBrandImage",
            "brandingAesthetics",
            "growthStrategies",
        ),
    ),
    SectionSpec(
        "financial_projections",
        "Financial Projections",
        4,
        1200,
        "Project revenue streams and costs over three years with explicit assumptions.",
        ("productCategories", "country", "currentChannels", "scalingGoals", "specificDeadlines"),
    ),
    SectionSpec(
        "operations_plan",
        "Operations Plan",
        4,
        600,
        "Describe sourcing, production, fulfilment, milestones and operational risks.",
        ("productCategories", "country", "growthStrategies", "scalingGoals", "specificDeadlines"),
    ),
    SectionSpec(
        "team_structure",
        "Team Structure",
        5,
        400,
        "Set the founder's role, key hires, advisors and partners.",
        ("fullName", "professionalMilestones", "scalingGoals", "longTermVision"),
    ),
)

_BY_KEY = {spec.key: spec for spec in BUSINESS_PLAN_SECTIONS}


class UnknownSection(ValueError):
    pass


def section(key: str) -> SectionSpec:
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(_BY_KEY)
        raise UnknownSection(f"unknown section {quote(key)}; known sections: {known}") from None


def sections_for_level(level: Level) -> list[SectionSpec]:
    return [s for s in BUSINESS_PLAN_SECTIONS if s.priority <= level.max_priority]


def resolve_sections(level: Level, only: list[str] | None = None) -> list[SectionSpec]:
    """Sections a plan request asks for: the level's, narrowed to ``only`` when given."""
    if not only:
        return sections_for_level(level)
    return [section(key) for key in dict.fromkeys(only)]
