"""The deliverables catalogue (M1–M8): months, documents, section kinds and their outputs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from domain.catalogue import deliverables as dlv
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.catalogue.summaries import SUMMARY_SPECS
from domain.client import KNOWN_FIELDS, PERSONAL_FIELDS, SENSITIVE_FIELDS
from domain.outputs import deliverables as outputs
from domain.outputs.schemas import output_model, strict_json_schema
from domain.sections import SectionSpec, Tier, UnknownSection

# DESIGN.md §3, typed here so a drift in either place fails.
EXPECTED: dict[int, tuple[str, tuple[str, ...]]] = {
    1: (
        "Foundation Excellence",
        ("Brand Architecture", "Market Fortification", "Visual Identity", "Content Framework", "Community Foundation"),
    ),
    2: (
        "Brand Readiness & Productization",
        (
            "Product Development Playbook",
            "E-Commerce Infrastructure",
            "Visual Assets Production",
            "Content Production SOP",
            "Operational Readiness",
        ),
    ),
    3: (
        "Market Entry Preparation",
        (
            "Pre-Launch Campaign",
            "Influencer & Affiliate Playbook",
            "Advertising Starter Kit",
            "Content Engine Kit",
            "Community Building",
        ),
    ),
    4: (
        "Sales Engine & Launch Infrastructure",
        (
            "Conversion Optimization",
            "Email & CRM Automation",
            "Customer Experience",
            "Analytics Dashboard",
            "Scaling Partnerships",
        ),
    ),
    5: (
        "Pre-Launch Mastery",
        (
            "Pre-Launch Simulation",
            "Crisis & Reputation Kit",
            "Launch Event Playbook",
            "Team & Creator Roles Matrix",
            "Final Go-to-Market Plan",
        ),
    ),
    6: (
        "Soft Launch Execution",
        (
            "Soft Launch Report",
            "Content & Ad Optimization",
            "Customer Feedback Loop",
            "Creator Performance Dashboard",
            "Iteration Roadmap",
        ),
    ),
    7: (
        "Scaling & Growth Systems",
        (
            "Paid Media Scaling",
            "Community Monetization",
            "Influencer/Affiliate Scaling",
            "Product Expansion",
            "Team & Ops Scaling SOPs",
        ),
    ),
    8: (
        "Full Launch & Market Domination",
        (
            "Full Launch Master Plan",
            "Omnichannel Growth",
            "Partnerships & Distribution",
            "Brand Authority",
            "12–24 Month Scaling Roadmap",
        ),
    ),
}

KIND_TITLES = ("Executive Summary", "Brand Context", "Framework/Strategy", "SOPs/Workflows", "Templates/Tools", "KPIs")
BRAND_FIELDS = {
    "brandName",
    "industryNiche",
    "brandValues",
    "brandPersonality",
    "idealBrandImage",
    "emotionsBrandEvokes",
    "brandingAesthetics",
    "targetAudience",
    "uniqueValueProps",
}
ALL_DOCUMENTS = [d for m in dlv.months() for d in m.documents]


# -- months and documents ---------------------------------------------------------------------
def test_eight_months_of_five_documents_with_design_titles():
    assert [m.number for m in dlv.months()] == list(range(1, 9))
    for n, (title, doc_titles) in EXPECTED.items():
        m = dlv.month(n)
        assert m.title == title
        assert m.key == f"m{n}"
        assert tuple(d.title for d in dlv.documents(n)) == doc_titles
        assert all(d.month == n for d in m.documents)


def test_spot_checks_against_design():
    assert dlv.month(1).title == "Foundation Excellence"
    assert dlv.documents(1)[0].title == "Brand Architecture"
    assert dlv.documents(1)[0].key == "m1_brand_architecture"
    assert dlv.documents(3)[1].title == "Influencer & Affiliate Playbook"
    assert dlv.documents(7)[2].title == "Influencer/Affiliate Scaling"
    assert dlv.month(8).title == "Full Launch & Market Domination"
    assert dlv.documents(8)[-1].title == "12–24 Month Scaling Roadmap"
    assert dlv.documents(8)[-1].key == "m8_12_24_month_scaling_roadmap"


def test_document_keys_are_unique_snake_case_and_carry_their_month():
    keys = [d.key for d in ALL_DOCUMENTS]
    assert len(keys) == 40 == len(set(keys))
    for doc in ALL_DOCUMENTS:
        assert re.fullmatch(r"m[1-8](_[a-z0-9]+)+", doc.key), doc.key
        assert doc.key.startswith(f"m{doc.month}_")
        assert dlv.SEPARATOR not in doc.key
        assert dlv.document(doc.key) is doc


def test_every_document_has_a_one_sentence_purpose():
    for doc in ALL_DOCUMENTS:
        assert doc.purpose.endswith(".") and doc.purpose.count(". ") == 0, doc.key
        assert 30 <= len(doc.purpose) <= 140, doc.key


@pytest.mark.parametrize("n", [0, 9, -1, True, "3", 2.0])
def test_month_outside_range_names_the_valid_range(n: Any):
    with pytest.raises(ValueError, match="1–8"):
        dlv.month(n)
    with pytest.raises(ValueError, match="1–8"):
        dlv.documents(n)


def test_unknown_document_is_refused():
    with pytest.raises(dlv.UnknownDocument, match="m1_brand_architecture"):
        dlv.document("m1_brand")


# -- section kinds ------------------------------------------------------------------------------
def test_six_section_kinds_in_reading_order():
    kinds = dlv.section_kinds()
    assert tuple(k.title for k in kinds) == KIND_TITLES
    assert [k.priority for k in kinds] == [1, 2, 3, 4, 5, 6]
    assert len({k.key for k in kinds}) == len({k.output for k in kinds}) == 6
    assert all(isinstance(k, SectionSpec) for k in kinds)


def test_kind_keys_do_not_collide_with_business_plan_keys():
    kind_keys = {k.key for k in dlv.section_kinds()}
    assert not kind_keys & {s.key for s in BUSINESS_PLAN_SECTIONS}
    assert not kind_keys & set(SUMMARY_SPECS)


def test_every_document_has_the_six_kinds_and_section_keys_are_unique():
    seen: set[str] = set()
    for doc in ALL_DOCUMENTS:
        specs = dlv.document_sections(doc.key)
        assert tuple(s.title for s in specs) == KIND_TITLES, doc.key
        assert [dlv.kind_of(s.key) for s in specs] == [k.key for k in dlv.section_kinds()]
        own = [s.key for s in specs if s.key != "brand_context"]
        assert len(own) == 5
        assert not seen & set(own), doc.key
        seen.update(own)
    assert len(seen) == 40 * 5


def test_exactly_one_shared_kind_brand_context_reused_by_every_document():
    shared = [k.key for k in dlv.section_kinds() if k.shared]
    assert shared == ["brand_context"]
    assert dlv.SHARED_KINDS == {"brand_context"}
    # A shared section may not depend on the month or document, or it could not be reused.
    assert not dlv.traits("brand_context").uses_digest
    assert not dlv.traits("brand_context").document_fields
    brand = {s for doc in ALL_DOCUMENTS for s in dlv.document_sections(doc.key) if s.key == "brand_context"}
    assert brand == {dlv.section_kind("brand_context")}
    for n in range(1, 9):
        specs = dlv.month_sections(n)
        assert len(specs) == 1 + 5 * 5
        assert [s.key for s in specs].count("brand_context") == 1
        assert specs[0].key == "brand_context"


def test_brand_context_reads_the_brand_fields():
    assert set(dlv.section_kind("brand_context").fields) == BRAND_FIELDS


def test_every_field_is_a_crm_field_and_email_never_appears():
    specs = [*dlv.section_kinds(), *(s for d in ALL_DOCUMENTS for s in dlv.document_sections(d.key))]
    for spec in specs:
        assert set(spec.fields) <= KNOWN_FIELDS, spec.key
        assert "email" not in spec.fields, spec.key
        assert not set(spec.fields) & SENSITIVE_FIELDS, spec.key
        assert "fullName" not in spec.fields, spec.key
        assert len(spec.fields) == len(set(spec.fields)), spec.key
        assert len(spec.fields) <= 9, spec.key
    for doc in ALL_DOCUMENTS:
        assert set(doc.focus_fields) <= KNOWN_FIELDS - {"email"}, doc.key
        assert 1 <= len(doc.focus_fields) <= 3, doc.key
    handles = {"instagramHandle", "tiktokHandle"}
    with_handles = {d.key for d in ALL_DOCUMENTS if handles & set(d.focus_fields)}
    assert with_handles and all(k.split("_", 1)[1].startswith(("content", "creator")) for k in with_handles)
    assert not PERSONAL_FIELDS & set().union(*(k.fields for k in dlv.section_kinds()))


def test_document_sections_narrow_the_kind_to_the_document():
    spec = dlv.section_spec("m1_visual_identity__framework_strategy")
    kind = dlv.section_kind("framework_strategy")
    assert spec.title == kind.title and spec.target_tokens == kind.target_tokens
    assert spec.schema_version == kind.schema_version
    assert "Visual Identity" in spec.purpose and "Foundation Excellence" in spec.purpose
    assert set(spec.fields) == set(kind.fields) | {"brandingAesthetics", "preferredFont", "inspirationBrands"}
    # Kinds without document fields keep the kind's list.
    assert dlv.section_spec("m1_visual_identity__kpis").fields == dlv.section_kind("kpis").fields


@pytest.mark.parametrize(
    "key",
    [
        "m1_brand_architecture__brand_context",  # shared kinds have no per-document key
        "kpis",  # a per-document kind needs its document
        "m9_nothing__kpis",
        "m1_brand_architecture__pricing",
        "executive_summary",
        "",
    ],
)
def test_unknown_section_keys_are_refused(key: str):
    with pytest.raises(UnknownSection):
        dlv.section_spec(key)


def test_section_keys_round_trip_and_are_valid_schema_names():
    for doc in ALL_DOCUMENTS:
        for kind in dlv.section_kinds():
            key = dlv.section_key(doc.key, kind.key)
            expected_doc = None if kind.key == "brand_context" else doc.key
            assert dlv.split_section_key(key) == (expected_doc, kind.key)
            # OpenAI's response_format name: [a-zA-Z0-9_-]{1,64}, with the "_v<N>" suffix.
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,60}", key), key
    with pytest.raises(dlv.UnknownDocument):
        dlv.section_key("m1_nope", "brand_context")


def test_a_document_is_two_to_two_and_a_half_thousand_tokens():
    total = sum(k.target_tokens for k in dlv.section_kinds())
    assert 2000 <= total <= 2500
    brand = dlv.section_kind("brand_context").target_tokens
    assert brand == min(k.target_tokens for k in dlv.section_kinds())
    assert dlv.section_kind("framework_strategy").target_tokens == max(k.target_tokens for k in dlv.section_kinds())


def test_tiers_are_routing_tiers_and_follow_complexity():
    for kind in dlv.section_kinds():
        assert isinstance(kind.tier, Tier), kind.key
    assert dlv.section_kind("templates_tools").tier is dlv.section_kind("kpis").tier is Tier.ECONOMY
    assert dlv.section_kind("framework_strategy").tier in {Tier.PREMIUM, Tier.STANDARD}
    # A document's section carries its kind's tier, cache policy and output model.
    concrete = dlv.section_spec("m3_pre_launch_campaign__kpis")
    kind = dlv.section_kind("kpis")
    assert (concrete.tier, concrete.cache, concrete.output) == (Tier.ECONOMY, kind.cache, outputs.Kpis)
    assert not concrete.cache.semantic
    assert {k.uses_digest for k in dlv.section_kinds()} == {True, False}
    assert dlv.traits("framework_strategy").uses_digest


# -- outputs ---------------------------------------------------------------------------------
def _objects(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_objects(item))
    return found


def test_strict_schemas_close_every_object_and_require_every_property():
    for key, model in ((k.key, k.output) for k in dlv.section_kinds()):
        schema = strict_json_schema(model)
        objects = _objects(schema)
        assert objects, key
        for obj in objects:
            assert obj.get("additionalProperties") is False, (key, obj)
            assert set(obj["required"]) == set(obj["properties"]), (key, obj)
            assert "title" not in obj, key
    assert set(strict_json_schema(outputs.Kpis)["$defs"]["Kpi"]["properties"]) == {
        "name",
        "definition",
        "target",
        "cadence",
    }
    assert set(strict_json_schema(outputs.SopsWorkflows)["$defs"]["Sop"]["properties"]) == {"name", "steps", "owner"}
    assert set(strict_json_schema(outputs.TemplatesTools)["$defs"]["Template"]["properties"]) == {
        "name",
        "purpose",
        "outline",
    }


def test_output_models_forbid_extra_and_missing_fields():
    kpi = {"name": "ROAS", "definition": "Revenue / ad spend", "target": "3x", "cadence": "weekly"}
    assert output_model("m2_operational_readiness__kpis").model_validate({"kpis": [kpi]})
    with pytest.raises(ValidationError):
        outputs.Kpis.model_validate({"kpis": [kpi | {"owner": "x"}]})
    with pytest.raises(ValidationError):
        outputs.Kpis.model_validate({"kpis": [{"name": "ROAS"}]})
    assert output_model("brand_context") is outputs.BrandContext
    assert output_model("kpis") is outputs.Kpis
    with pytest.raises(UnknownSection):
        output_model("m1_brand_architecture__pricing")
