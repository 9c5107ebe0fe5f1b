"""What each section must receive to do its job: the yardstick for context fidelity.

This table is written from what each section is *for* (its purpose in the catalogue and the
studio's brief), not read off the projection that builds prompts (``SectionSpec.fields``). The
two are kept apart on purpose: fidelity checks the projection against this table, and the
independent lower bound prices a minimal prompt from it, so neither may be derived from the
thing it measures. A section may read more than it needs; it must never read less.

Keys: business-plan section keys; deliverable section *kinds* (a document's section also needs
its document's focus fields when the kind is written per document, see ``needed_fields``);
``thread_summary`` and ``client_summary`` need text, not client fields (their facts come from
the messages and thread summaries; tokenopt.fidelity checks those).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.catalogue import deliverables
from domain.catalogue.plan import section
from domain.sections import DocumentKind


@dataclass(frozen=True)
class Needs:
    # CRM fields (camelCase) whose facts must reach the prompt.
    fields: tuple[str, ...]
    # The decisions and KPI names of earlier months must reach the prompt (deliverables).
    earlier_months: bool = False


# Business plan: what to sell, to whom, why it wins, how it grows, by when, who runs it.
BUSINESS_PLAN_NEEDS: dict[str, Needs] = {
    # What it sells, to whom, why it wins, what it aims for.
    "executive_summary": Needs(
        ("brandName", "industryNiche", "productCategories", "targetAudience", "uniqueValueProps", "visionForVenture")
    ),
    # The market: which niche, where, who buys and what hurts them.
    "market_analysis": Needs(("industryNiche", "country", "targetAudience", "targetDemographicAge", "keyPainPoints")),
    # Who else sells it and why this brand is different.
    "competitive_landscape": Needs(("brandName", "industryNiche", "emergingCompetitors", "differentiation")),
    # The products and the problems they solve.
    "product_services": Needs(("brandName", "productCategories", "otherProductIdeas", "keyPainPoints")),
    # Where the audience is reached and in what voice.
    "marketing_strategy": Needs(
        ("brandName", "targetAudience", "currentChannels", "brandPersonality", "growthStrategies")
    ),
    # Revenue from the products in the market, scaled to the goals and dates.
    "financial_projections": Needs(("productCategories", "country", "scalingGoals", "specificDeadlines")),
    # Making and shipping the products, on the dates.
    "operations_plan": Needs(("productCategories", "country", "specificDeadlines")),
    # The founder and what the team must grow to.
    "team_structure": Needs(("fullName", "professionalMilestones", "scalingGoals")),
}

# Deliverable section kinds. A per-document kind also needs its document's focus fields when
# the kind writes about the document's topic (KindSpec.document_fields).
DELIVERABLE_NEEDS: dict[str, Needs] = {
    "exec_summary": Needs(("brandName", "industryNiche")),
    "brand_context": Needs(("brandName", "brandValues", "brandPersonality", "targetAudience", "brandingAesthetics")),
    # It builds on earlier months' decisions; later months inherit its own.
    "framework_strategy": Needs(("brandName", "targetAudience", "growthStrategies"), earlier_months=True),
    "sops_workflows": Needs(("currentChannels",)),
    "templates_tools": Needs(("currentChannels",)),
    # Keeps the KPI names of earlier months; targets follow the goals and dates.
    "kpis": Needs(("scalingGoals", "specificDeadlines"), earlier_months=True),
}


def needs(kind: DocumentKind, section_key: str) -> Needs:
    """What a section of ``kind`` must receive; raises UnknownSection for an unknown key."""
    if kind is DocumentKind.DELIVERABLE:
        doc_key, kind_key = deliverables.split_section_key(section_key)
        base = DELIVERABLE_NEEDS[kind_key]
        if doc_key is not None and deliverables.traits(kind_key).document_fields:
            focus = deliverables.document(doc_key).focus_fields
            return Needs(tuple(dict.fromkeys((*base.fields, *focus))), base.earlier_months)
        return base
    section(section_key)  # unknown keys raise
    return BUSINESS_PLAN_NEEDS[section_key]


def needed_fields(kind: DocumentKind, section_key: str) -> tuple[str, ...]:
    return needs(kind, section_key).fields
