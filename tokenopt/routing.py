"""Cheapest-capable model routing: a section's spec names its tier, tiers map to configured models."""

from __future__ import annotations

from dataclasses import dataclass

from domain import catalogue
from domain.sections import Tier, UnknownSection


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
    """The tier the section's spec carries (a deliverable section's is its kind's); standard for
    a key no catalogue knows."""
    try:
        return catalogue.spec_of(section_key).tier
    except UnknownSection:
        return Tier.STANDARD
