"""Deliverable sections through the plan's machinery: outputs, schema names, routing, cache
policy, prompts (digest as context) and the stub's answer sizes."""

from __future__ import annotations

import pytest

from domain.cache_policy import policy
from domain.catalogue import deliverables
from domain.catalogue.plan import section
from domain.outputs.deliverables import BrandContext, Kpis
from domain.outputs.schemas import output_model, schema_name
from domain.sections import DocumentKind, Tier, UnknownSection
from stubs.llm_server import section_from_schema_name, target_tokens
from tokenopt.prompts import build_section_prompt
from tokenopt.routing import tier_for

KPIS = "m1_brand_architecture__kpis"
STRATEGY = "m3_pre_launch_campaign__framework_strategy"
RECORD = {
    "brandName": "Glow",
    "industryNiche": "skincare",
    "scalingGoals": "10k customers",
    "specificDeadlines": "launch in March",
    "currentChannels": "Instagram",
}


def test_outputs_and_schema_names_come_from_the_section_kind():
    assert output_model(KPIS) is Kpis
    assert output_model("brand_context") is BrandContext
    assert output_model("market_analysis").__name__ == "MarketAnalysis"
    assert schema_name(KPIS, 1) == schema_name("m8_brand_authority__kpis", 1) == "kpis_v1"
    assert schema_name("brand_context", 1) == "brand_context_v1"
    assert schema_name("market_analysis", 2) == "market_analysis_v2"
    with pytest.raises(UnknownSection):
        output_model("pricing")


def test_routing_and_cache_policy_by_kind():
    assert tier_for(KPIS) is Tier.ECONOMY
    assert tier_for(STRATEGY) is Tier.PREMIUM
    assert tier_for("brand_context") is Tier.STANDARD
    assert tier_for("executive_summary") is Tier.PREMIUM
    assert policy(DocumentKind.DELIVERABLE, KPIS).semantic is False
    assert policy(DocumentKind.DELIVERABLE, STRATEGY).semantic is True
    assert policy(DocumentKind.BUSINESS_PLAN, "financial_projections").semantic is False


def test_stub_answers_deliverables_at_their_catalogue_size():
    for key in (KPIS, STRATEGY, "brand_context"):
        name = section_from_schema_name(schema_name(key, 1))
        assert target_tokens(name, None) == deliverables.section_spec(key).target_tokens
    assert target_tokens("market_analysis", None) == section("market_analysis").target_tokens


def test_digest_context_follows_the_client_block_and_changes_the_input_hash():
    spec = deliverables.section_spec(KPIS)
    plain = build_section_prompt(RECORD, spec, model="gpt-4.1", kind=DocumentKind.DELIVERABLE)
    context = "EARLIER MONTHS (before M2)\nM1 Foundation Excellence\n- Brand Architecture: one brand | KPIs: CAC"
    with_digest = build_section_prompt(RECORD, spec, model="gpt-4.1", kind=DocumentKind.DELIVERABLE, context=context)
    assert "deliverable section" in with_digest.messages[0]["content"]
    user = with_digest.messages[1]["content"]
    assert user.startswith("CLIENT\n") and user.index(context) < user.index("\nINPUT\n")
    assert context in with_digest.stable_prefix
    assert plain.input_hash != with_digest.input_hash
    other = build_section_prompt(RECORD, spec, model="gpt-4.1", kind=DocumentKind.DELIVERABLE, context=context + "!")
    assert other.input_hash != with_digest.input_hash


def test_a_long_digest_does_not_exhaust_a_small_sections_budget():
    spec = deliverables.section_spec(KPIS)  # 300 target tokens: a 600-token budget
    context = "EARLIER MONTHS (before M8)\n" + "\n".join(f"- Document {i}: " + "decision " * 40 for i in range(25))
    built = build_section_prompt(RECORD, spec, model="gpt-4.1", kind=DocumentKind.DELIVERABLE, context=context)
    assert context in built.messages[1]["content"]


def test_business_plan_prompts_are_unchanged():
    built = build_section_prompt(RECORD, section("team_structure"), model="gpt-4.1")
    assert built.messages[0]["content"].startswith("Write one business-plan section for a creator brand.")
