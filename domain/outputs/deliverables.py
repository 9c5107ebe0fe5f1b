"""What each deliverable section kind returns (its spec in domain.catalogue.deliverables names
the model). The strategy's decisions and the KPI names feed later months' digest (domain.digest),
so their sizes are bounded here."""

from __future__ import annotations

from pydantic import Field

from domain.outputs.base import OutputModel


class Pillar(OutputModel):
    name: str
    description: str


class Sop(OutputModel):
    name: str
    owner: str
    steps: list[str]


class Template(OutputModel):
    name: str
    purpose: str
    outline: list[str]


class Tool(OutputModel):
    name: str
    use: str


class Kpi(OutputModel):
    # Later months keep the same KPIs by name (the digest carries names whole): short is cheap.
    name: str = Field(description="at most 5 words")
    definition: str
    target: str
    cadence: str


class DeliverableSummary(OutputModel):
    headline: str
    overview: str
    key_points: list[str]
    next_steps: list[str]


class BrandContext(OutputModel):
    positioning: str
    audience: str
    values: list[str]
    personality: str
    visual_direction: str


class FrameworkStrategy(OutputModel):
    objective: str
    approach: str
    pillars: list[Pillar]
    # Read by later months through the digest: short is what keeps the digest small.
    key_decisions: list[str] = Field(description="3-5 decisions made here, each at most 8 words")
    risks: list[str]


class SopsWorkflows(OutputModel):
    sops: list[Sop]


class TemplatesTools(OutputModel):
    templates: list[Template]
    tools: list[Tool]


class Kpis(OutputModel):
    kpis: list[Kpi]
