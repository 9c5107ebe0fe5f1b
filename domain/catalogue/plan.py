"""The business plan's catalogue (DESIGN.md §3): its sections, their priority, size and inputs.

Each spec carries everything about its section (see domain.sections.SectionSpec); the plan's
levels pick sections by priority. Routing, caching, projection and differential regeneration
ask this catalogue; none of them re-decides.
"""

from __future__ import annotations

from domain.limits import quote
from domain.outputs.plan import (
    CompetitiveLandscape,
    ExecutiveSummary,
    FinancialProjections,
    MarketAnalysis,
    MarketingStrategy,
    OperationsPlan,
    ProductServices,
    TeamStructure,
)
from domain.sections import CachePolicy, Level, SectionSpec, Tier, UnknownSection

# Figures depend on the client's numbers and dates: an exact match is safe, a "similar" one is
# not, so these sections never come from the semantic tier.
FIGURES_MATCH_EXACTLY = CachePolicy(semantic=False, reason="prices and dates must match exactly")
DEADLINES_MATCH_EXACTLY = CachePolicy(semantic=False, reason="deadlines must match exactly")

BUSINESS_PLAN_SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(
        key="executive_summary",
        title="Executive Summary",
        priority=1,
        target_tokens=500,
        purpose="Summarise the venture: what it sells, to whom, why it wins and what it aims for.",
        fields=(
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
        tier=Tier.PREMIUM,
        output=ExecutiveSummary,
    ),
    SectionSpec(
        key="market_analysis",
        title="Market Analysis",
        priority=2,
        target_tokens=800,
        purpose="Size and segment the market, name the trends and the audience's pain points.",
        fields=(
            "industryNiche",
            "country",
            "targetAudience",
            "demographicProfile",
            "targetDemographicAge",
            "audienceGenderSplit",
            "audienceMaritalStatus",
            "keyPainPoints",
        ),
        tier=Tier.STANDARD,
        output=MarketAnalysis,
    ),
    SectionSpec(
        key="competitive_landscape",
        title="Competitive Landscape",
        priority=2,
        target_tokens=600,
        purpose="Map direct and emerging competitors and how the brand stands apart.",
        fields=(
            "brandName",
            "industryNiche",
            "differentiation",
            "uniqueValueProps",
            "emergingCompetitors",
            "inspirationBrands",
        ),
        tier=Tier.STANDARD,
        output=CompetitiveLandscape,
    ),
    SectionSpec(
        key="product_services",
        title="Products and Services",
        priority=3,
        target_tokens=700,
        purpose="Define the product line, price points and the launch order.",
        fields=(
            "brandName",
            "productCategories",
            "otherProductIdeas",
            "keyPainPoints",
            "brandValues",
            "uniqueValueProps",
        ),
        tier=Tier.STANDARD,
        output=ProductServices,
    ),
    SectionSpec(
        key="marketing_strategy",
        title="Marketing Strategy",
        priority=3,
        target_tokens=900,
        purpose="Plan positioning, channels, content pillars and the launch campaign.",
        fields=(
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
        tier=Tier.STANDARD,
        output=MarketingStrategy,
    ),
    SectionSpec(
        key="financial_projections",
        title="Financial Projections",
        priority=4,
        target_tokens=1200,
        purpose="Project revenue streams and costs over three years with explicit assumptions.",
        fields=("productCategories", "country", "currentChannels", "scalingGoals", "specificDeadlines"),
        tier=Tier.PREMIUM,
        output=FinancialProjections,
        cache=FIGURES_MATCH_EXACTLY,
    ),
    SectionSpec(
        key="operations_plan",
        title="Operations Plan",
        priority=4,
        target_tokens=600,
        purpose="Describe sourcing, production, fulfilment, milestones and operational risks.",
        fields=("productCategories", "country", "growthStrategies", "scalingGoals", "specificDeadlines"),
        tier=Tier.ECONOMY,
        output=OperationsPlan,
        cache=DEADLINES_MATCH_EXACTLY,
    ),
    SectionSpec(
        key="team_structure",
        title="Team Structure",
        priority=5,
        target_tokens=400,
        purpose="Set the founder's role, key hires, advisors and partners.",
        fields=("fullName", "professionalMilestones", "scalingGoals", "longTermVision"),
        tier=Tier.ECONOMY,
        output=TeamStructure,
    ),
)

_BY_KEY = {spec.key: spec for spec in BUSINESS_PLAN_SECTIONS}


def find(key: str) -> SectionSpec | None:
    return _BY_KEY.get(key)


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
