"""What each business-plan section returns (its spec in domain.catalogue.plan names the model)."""

from __future__ import annotations

from domain.outputs.base import OutputModel


class Segment(OutputModel):
    name: str
    description: str
    size_estimate: str


class Competitor(OutputModel):
    name: str
    strengths: str
    weaknesses: str


class Product(OutputModel):
    name: str
    description: str
    price_point: str
    launch_phase: str


class Channel(OutputModel):
    name: str
    tactics: str
    kpi: str


class RevenueStream(OutputModel):
    name: str
    year_1: str
    year_2: str
    year_3: str


class Milestone(OutputModel):
    quarter: str
    goal: str


class Hire(OutputModel):
    role: str
    responsibility: str
    timing: str


class ExecutiveSummary(OutputModel):
    headline: str
    overview: str
    mission: str
    key_objectives: list[str]
    success_factors: list[str]


class MarketAnalysis(OutputModel):
    market_overview: str
    target_segments: list[Segment]
    trends: list[str]
    customer_pain_points: list[str]
    opportunity: str


class CompetitiveLandscape(OutputModel):
    overview: str
    competitors: list[Competitor]
    differentiators: list[str]
    positioning: str


class ProductServices(OutputModel):
    overview: str
    products: list[Product]
    roadmap: list[str]


class MarketingStrategy(OutputModel):
    positioning: str
    channels: list[Channel]
    content_pillars: list[str]
    launch_campaign: str


class FinancialProjections(OutputModel):
    assumptions: list[str]
    revenue_streams: list[RevenueStream]
    cost_structure: list[str]
    break_even: str
    funding_needs: str


class OperationsPlan(OutputModel):
    overview: str
    production: str
    fulfillment: str
    milestones: list[Milestone]
    risks: list[str]


class TeamStructure(OutputModel):
    founder_role: str
    key_hires: list[Hire]
    advisors: list[str]
    partners: list[str]
