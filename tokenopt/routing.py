"""Cheapest-capable model routing: one table from section to tier, tiers to configured models."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain import deliverables
from domain.sections import UnknownSection


class Tier(StrEnum):
    ECONOMY = "economy"
    STANDARD = "standard"
    PREMIUM = "premium"

    def escalated(self) -> Tier | None:
        order = list(Tier)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None


# Complexity, not priority: reasoning-heavy sections get the strong model, structured
# boilerplate the cheapest one.
SECTION_TIERS: dict[str, Tier] = {
    "executive_summary": Tier.PREMIUM,
    "financial_projections": Tier.PREMIUM,
    "market_analysis": Tier.STANDARD,
    "competitive_landscape": Tier.STANDARD,
    "marketing_strategy": Tier.STANDARD,
    "product_services": Tier.STANDARD,
    "operations_plan": Tier.ECONOMY,
    "team_structure": Tier.ECONOMY,
    # Summaries condense text the prompt carries; an invalid answer still escalates once.
    "thread_summary": Tier.ECONOMY,
    "client_summary": Tier.ECONOMY,
}


@dataclass(frozen=True)
class ModelRouter:
    premium: str
    standard: str
    economy: str
    # One model for every tier (a local endpoint serving a single model).
    override: str | None = None

    def model_for(self, tier: Tier) -> str:
        if self.override:
            return self.override
        return {Tier.PREMIUM: self.premium, Tier.STANDARD: self.standard, Tier.ECONOMY: self.economy}[tier]

    def models(self) -> set[str]:
        return {self.model_for(t) for t in Tier}


def tier_for(section_key: str) -> Tier:
    """A business-plan section's tier from SECTION_TIERS; a deliverable section's from its kind."""
    if section_key in SECTION_TIERS:
        return SECTION_TIERS[section_key]
    try:
        return Tier(deliverables.tier_name(section_key))
    except UnknownSection:
        return Tier.STANDARD
