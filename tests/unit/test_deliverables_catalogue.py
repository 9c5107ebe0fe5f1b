"""The deliverables catalogue (M1–M8): months, documents, section kinds, outputs and the digest."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from pydantic import ValidationError

from domain import deliverables as dlv
from domain.client import KNOWN_FIELDS, PERSONAL_FIELDS, SENSITIVE_FIELDS
from domain.outputs import SECTION_OUTPUTS, strict_json_schema
from domain.sections import BUSINESS_PLAN_SECTIONS, SectionSpec, UnknownSection
from tokenopt.counting import count_tokens
from tokenopt.routing import Tier

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
    assert set(dlv.KIND_TRAITS) == set(dlv.KIND_OUTPUTS) == {k.key for k in kinds}
    assert all(isinstance(k, SectionSpec) for k in kinds)


def test_kind_keys_do_not_collide_with_business_plan_keys():
    kind_keys = {k.key for k in dlv.section_kinds()}
    assert not kind_keys & {s.key for s in BUSINESS_PLAN_SECTIONS}
    assert not kind_keys & set(SECTION_OUTPUTS)


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
    shared = [k for k, t in dlv.KIND_TRAITS.items() if t.shared]
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
        Tier(dlv.tier_name(kind.key))
    assert dlv.tier_name("templates_tools") == dlv.tier_name("kpis") == Tier.ECONOMY
    assert dlv.tier_name("framework_strategy") in {Tier.PREMIUM, Tier.STANDARD}
    assert dlv.tier_name("m3_pre_launch_campaign__kpis") == Tier.ECONOMY
    assert {t.uses_digest for t in dlv.KIND_TRAITS.values()} == {True, False}
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
    for key, model in dlv.KIND_OUTPUTS.items():
        schema = strict_json_schema(model)
        objects = _objects(schema)
        assert objects, key
        for obj in objects:
            assert obj.get("additionalProperties") is False, (key, obj)
            assert set(obj["required"]) == set(obj["properties"]), (key, obj)
            assert "title" not in obj, key
    assert set(strict_json_schema(dlv.Kpis)["$defs"]["Kpi"]["properties"]) == {
        "name",
        "definition",
        "target",
        "cadence",
    }
    assert set(strict_json_schema(dlv.SopsWorkflows)["$defs"]["Sop"]["properties"]) == {"name", "steps", "owner"}
    assert set(strict_json_schema(dlv.TemplatesTools)["$defs"]["Template"]["properties"]) == {
        "name",
        "purpose",
        "outline",
    }


def test_output_models_forbid_extra_and_missing_fields():
    kpi = {"name": "ROAS", "definition": "Revenue / ad spend", "target": "3x", "cadence": "weekly"}
    assert dlv.output_model_for("m2_operational_readiness__kpis").model_validate({"kpis": [kpi]})
    with pytest.raises(ValidationError):
        dlv.Kpis.model_validate({"kpis": [kpi | {"owner": "x"}]})
    with pytest.raises(ValidationError):
        dlv.Kpis.model_validate({"kpis": [{"name": "ROAS"}]})
    assert dlv.output_model_for("brand_context") is dlv.BrandContext
    with pytest.raises(UnknownSection):
        dlv.output_model_for("market_analysis")


# -- digest ----------------------------------------------------------------------------------
PHRASES = (
    "Position the brand as the premium, clean choice for busy mothers aged 28 to 40 in the UK",
    "Launch with three hero products first and hold bundles and refills for the second wave",
    "Use sage green and warm terracotta as the primary palette on every customer touchpoint",
    "Publish four short videos a week on TikTok and three carousel posts on Instagram",
    "Run the community in a private Discord with a weekly live Q&A hosted by the founder",
    "Price the core line between 28 and 45 dollars, below the prestige competitors",
    "Ship from one third-party fulfilment centre and promise dispatch within 48 hours",
    "Grow the waitlist through a quiz-led landing page with a 10 percent launch discount",
)
METRICS = (
    "waitlist sign-ups per week",
    "email open rate",
    "return on ad spend",
    "customer acquisition cost",
    "repeat purchase rate",
    "engaged community members",
)


def _realistic_sections(through: int = 8) -> dict[str, dict[str, Any]]:
    """Full-size section contents for every document, validated by the output models."""
    phrase = itertools.cycle(PHRASES)
    out: dict[str, dict[str, Any]] = {}
    for m in dlv.months()[:through]:
        for doc in m.documents:
            topic = doc.title.lower()
            strategy = dlv.FrameworkStrategy(
                objective=f"Make {topic} a strength of the brand this month.",
                approach=f"Work through {topic} in weekly sprints with clear owners. " * 3,
                pillars=[dlv.Pillar(name=f"Pillar {i}", description=next(phrase)) for i in range(4)],
                key_decisions=[f"{next(phrase)} ({topic})" for _ in range(5)],
                risks=[next(phrase) for _ in range(3)],
            )
            summary = dlv.DeliverableSummary(
                headline=f"{doc.title} for the brand",
                overview=" ".join(next(phrase) + "." for _ in range(4)),
                key_points=[next(phrase) for _ in range(5)],
                next_steps=[next(phrase) for _ in range(3)],
            )
            kpis = dlv.Kpis(
                kpis=[
                    dlv.Kpi(
                        name=metric.capitalize(),
                        definition=next(phrase),
                        target="+20% by month end",
                        cadence="weekly",
                    )
                    for metric in METRICS
                ]
            )
            out[dlv.section_key(doc.key, "framework_strategy")] = strategy.model_dump(mode="json")
            out[dlv.section_key(doc.key, "exec_summary")] = summary.model_dump(mode="json")
            out[dlv.section_key(doc.key, "kpis")] = kpis.model_dump(mode="json")
    return out


def test_month_one_has_an_empty_digest():
    digest = dlv.build_digest(1, _realistic_sections())
    assert digest.documents == [] and dlv.render_digest(digest) == ""


@pytest.mark.parametrize("exact", [True, False])
def test_a_digest_of_seven_full_months_stays_under_the_bound(exact: bool):
    counter = {"count_tokens": count_tokens} if exact else {}
    sections = _realistic_sections()
    full_text = sum(count_tokens(str(v)) for v in sections.values())
    digest = dlv.build_digest(8, sections, **counter)
    text = dlv.render_digest(digest)
    tokens = count_tokens(text)
    assert tokens <= dlv.DIGEST_TOKEN_BUDGET, tokens
    assert full_text > 10 * tokens  # it is a digest, not the text
    assert [d.key for d in digest.documents] == [d.key for d in ALL_DOCUMENTS[:35]]
    for doc in digest.documents:
        assert 1 <= len(doc.decisions) <= dlv.MAX_DECISIONS
        assert all(len(x) <= dlv.DECISION_CHARS for x in doc.decisions)
        assert all(len(x) <= dlv.KPI_CHARS for x in doc.kpis)
        assert doc.title in text
    # The month just before keeps the most detail.
    assert all(len(d.decisions) >= dlv.MIN_DECISIONS for d in digest.documents if d.month == 7)
    # Every document measures the same KPIs: each name is carried once, by the first document.
    assert all(text.count(metric.capitalize()) == 1 for metric in METRICS)


def test_early_digests_are_not_trimmed_when_they_fit():
    digest = dlv.build_digest(3, _realistic_sections(), count_tokens=count_tokens)
    assert len(digest.documents) == 10
    assert all(len(d.decisions) == dlv.MAX_DECISIONS for d in digest.documents)
    assert digest.documents[0].kpis == [m.capitalize() for m in METRICS] and not any(
        d.kpis for d in digest.documents[1:]
    )


def test_every_month_digest_stays_under_the_bound_even_with_dense_figures():
    dense = "Hit 12,500 units at $38.50 AOV by Q3 2026 (UK/EU 60/40); CAC ≤ £14.20; ROAS ≥ 3.2x"
    content = {"key_decisions": [dense] * 5, "key_points": [dense], "kpis": [{"name": "ROAS ≥ 3.2x / CAC £14.20"}] * 3}
    sections = {key: content for key in dlv.digest_section_keys(8)}
    for n in range(2, 9):
        text = dlv.render_digest(dlv.build_digest(n, sections, count_tokens=count_tokens))
        assert count_tokens(text) <= dlv.DIGEST_TOKEN_BUDGET, n
        assert text.startswith(f"EARLIER MONTHS (before M{n})")


def test_a_small_digest_keeps_everything_within_item_bounds():
    key = dlv.section_key("m1_brand_architecture", "framework_strategy")
    summary = dlv.section_key("m1_brand_architecture", "exec_summary")
    kpis = dlv.section_key("m1_brand_architecture", "kpis")
    sections = {
        key: {"key_decisions": ["Premium clean positioning", "premium clean positioning.", "Three hero SKUs"]},
        summary: {"key_points": ["Sage and terracotta palette", "Quiz-led waitlist", "Founder-led Discord", "Extra"]},
        kpis: {"kpis": [{"name": "Waitlist sign-ups"}, {"name": "Email open rate"}, {"name": "ROAS"}, {"name": "CAC"}]},
        "m2_ecommerce_infrastructure__framework_strategy": {"key_decisions": ["Not carried into M2's own digest"]},
    }
    digest = dlv.build_digest(2, sections)
    assert [d.key for d in digest.documents] == ["m1_brand_architecture"]
    doc = digest.documents[0]
    # Duplicates dropped, topped up from the summary's key points, capped at five; KPIs whole.
    assert doc.decisions == [
        "Premium clean positioning",
        "Three hero SKUs",
        "Sage and terracotta palette",
        "Quiz-led waitlist",
        "Founder-led Discord",
    ]
    assert doc.kpis == ["Waitlist sign-ups", "Email open rate", "ROAS", "CAC"]
    text = dlv.render_digest(digest)
    assert "M1 Foundation Excellence" in text and "KPIs: Waitlist sign-ups, Email open rate, ROAS, CAC" in text


def test_digest_sizes_are_bounded_by_the_model():
    with pytest.raises(ValidationError):
        dlv.DigestDocument(key="k", month=1, title="t", decisions=["x"] * 6, kpis=[])
    with pytest.raises(ValidationError):
        dlv.DigestDocument(key="k", month=1, title="t", decisions=["x" * (dlv.DECISION_CHARS + 1)], kpis=[])
    with pytest.raises(ValidationError):
        dlv.DigestDocument(key="k", month=1, title="t", decisions=[], kpis=["k"] * (dlv.MAX_KPIS + 1))


def test_digest_sources():
    assert set(dlv.digest_fields()) == {"framework_strategy", "exec_summary", "kpis"}
    keys = dlv.digest_section_keys(3)
    assert len(keys) == 10 * 3
    assert all(dlv.split_section_key(k)[0].startswith(("m1_", "m2_")) for k in keys)
    assert dlv.digest_section_keys(1) == []
    with pytest.raises(ValueError, match="1–8"):
        dlv.digest_section_keys(9)


def test_clip_cuts_at_a_word_boundary():
    text = "Use sage green and terracotta as the primary palette everywhere"
    clipped = dlv.clip(text, 40)
    assert len(clipped) <= 40 and clipped.endswith("…")
    assert clipped == "Use sage green and terracotta…"
    assert dlv.clip("  Short   one. ", 40) == "Short one"
    assert len(dlv.clip("x" * 100, 20)) == 20
