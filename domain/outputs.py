"""Output schema of each section: what the model must return, as strict JSON.

Sections are generated as JSON and rendered to Markdown only for display, so the model never
spends tokens on formatting and every answer can be validated.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from domain import deliverables, summaries


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Segment(_Out):
    name: str
    description: str
    size_estimate: str


class Competitor(_Out):
    name: str
    strengths: str
    weaknesses: str


class Product(_Out):
    name: str
    description: str
    price_point: str
    launch_phase: str


class Channel(_Out):
    name: str
    tactics: str
    kpi: str


class RevenueStream(_Out):
    name: str
    year_1: str
    year_2: str
    year_3: str


class Milestone(_Out):
    quarter: str
    goal: str


class Hire(_Out):
    role: str
    responsibility: str
    timing: str


class ExecutiveSummary(_Out):
    headline: str
    overview: str
    mission: str
    key_objectives: list[str]
    success_factors: list[str]


class MarketAnalysis(_Out):
    market_overview: str
    target_segments: list[Segment]
    trends: list[str]
    customer_pain_points: list[str]
    opportunity: str


class CompetitiveLandscape(_Out):
    overview: str
    competitors: list[Competitor]
    differentiators: list[str]
    positioning: str


class ProductServices(_Out):
    overview: str
    products: list[Product]
    roadmap: list[str]


class MarketingStrategy(_Out):
    positioning: str
    channels: list[Channel]
    content_pillars: list[str]
    launch_campaign: str


class FinancialProjections(_Out):
    assumptions: list[str]
    revenue_streams: list[RevenueStream]
    cost_structure: list[str]
    break_even: str
    funding_needs: str


class OperationsPlan(_Out):
    overview: str
    production: str
    fulfillment: str
    milestones: list[Milestone]
    risks: list[str]


class TeamStructure(_Out):
    founder_role: str
    key_hires: list[Hire]
    advisors: list[str]
    partners: list[str]


SECTION_OUTPUTS: dict[str, type[_Out]] = {
    "executive_summary": ExecutiveSummary,
    "market_analysis": MarketAnalysis,
    "competitive_landscape": CompetitiveLandscape,
    "product_services": ProductServices,
    "marketing_strategy": MarketingStrategy,
    "financial_projections": FinancialProjections,
    "operations_plan": OperationsPlan,
    "team_structure": TeamStructure,
}


def output_model(section_key: str) -> type[BaseModel]:
    """The output model of a business-plan section, of a summary kind, else of a
    deliverable section key (by its kind); raises domain.sections.UnknownSection for keys none knows."""
    if section_key in SECTION_OUTPUTS:
        return SECTION_OUTPUTS[section_key]
    if section_key in summaries.SUMMARY_OUTPUTS:
        return summaries.SUMMARY_OUTPUTS[section_key]
    return deliverables.output_model_for(section_key)


def in_schema_order(section_key: str, content: dict[str, Any]) -> dict[str, Any]:
    """``content`` with its keys in the schema's order: Postgres jsonb stores keys shortest
    first, which would scramble the rendered headings."""
    return output_model(section_key).model_validate(content).model_dump(mode="json")


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the strict form OpenAI structured outputs require:
    every object closed and every property required, titles dropped (they cost tokens)."""
    schema = copy.deepcopy(model.model_json_schema())

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("title", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(schema)
    return schema


def schema_name(section_key: str, schema_version: int) -> str:
    """The name sent with the schema; stable per section and version. A deliverable section is
    named by its kind (``m1_brand_architecture__kpis`` -> ``kpis_v1``): one schema, one name."""
    if section_key not in SECTION_OUTPUTS and section_key not in summaries.SUMMARY_OUTPUTS:
        section_key = deliverables.kind_of(section_key)
    return f"{section_key}_v{schema_version}"


# A batch of sections answered in one call (tokenopt.batching): strict json_schema needs an
# object root, so the "array" is an object with one required property per member section,
# each the member's own schema (shared by $ref when members have the same output model).
BATCH_SCHEMA_KEY = "section_batch"
BATCH_SCHEMA_VERSION = 1


@lru_cache(maxsize=256)
def batch_output_model(section_keys: tuple[str, ...]) -> type[BaseModel]:
    """The output model of a batch: one required property per member, named by its section key."""
    fields: dict[str, Any] = {key: (output_model(key), ...) for key in section_keys}
    return create_model("SectionBatch", __config__=ConfigDict(extra="forbid"), **fields)


def batch_schema_name() -> str:
    """The name a batch's schema is sent with (the stub recognises batches by it)."""
    return f"{BATCH_SCHEMA_KEY}_v{BATCH_SCHEMA_VERSION}"


def batch_json_schema(section_keys: Sequence[str]) -> dict[str, Any]:
    """The strict JSON schema of a batch of ``section_keys``: a member's schema is written in
    place, or once under ``$defs`` when several members share it (the schema is billed as input)."""
    schema = strict_json_schema(batch_output_model(tuple(section_keys)))
    defs = schema.get("$defs", {})
    refs = [p.get("$ref", "") for p in schema["properties"].values()]
    for name, prop in schema["properties"].items():
        ref = prop.get("$ref", "")
        if ref.startswith("#/$defs/") and refs.count(ref) == 1:
            schema["properties"][name] = defs.pop(ref.removeprefix("#/$defs/"))
    if not defs:
        schema.pop("$defs", None)
    return schema


# A revision of a stored section answered as an RFC 6902 JSON Patch (tokenopt.patches): only
# what the changed facts touch is written. Values are strings: sections are text leaves and
# lists of text, and a strict schema cannot say "any JSON" (a list of objects is rewritten).
PATCH_SCHEMA_KEY = "section_patch"
PATCH_SCHEMA_VERSION = 1


class PatchOperation(_Out):
    op: Literal["replace", "add", "remove"]
    # A JSON Pointer into the stored section, e.g. /overview or /trends/2 or /trends/- (append).
    path: str
    # The new text ("" for remove).
    value: str


class SectionPatch(_Out):
    operations: list[PatchOperation]


def patch_schema_name() -> str:
    """The name a patch's schema is sent with (the stub recognises patches by it)."""
    return f"{PATCH_SCHEMA_KEY}_v{PATCH_SCHEMA_VERSION}"
