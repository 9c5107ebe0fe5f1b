"""The catalogues, one per document kind: every spec carries its tier, cache policy and output,
and routing, caching and output schemas answer from the spec."""

from __future__ import annotations

import pytest

from domain import catalogue
from domain.cache_policy import policy
from domain.catalogue import deliverables, plan, summaries
from domain.outputs.schemas import output_model
from domain.sections import DocumentKind, SectionSpec, Tier, UnknownSection
from tokenopt.routing import tier_for

SPECS: list[tuple[DocumentKind, SectionSpec]] = [
    *((DocumentKind.BUSINESS_PLAN, s) for s in plan.BUSINESS_PLAN_SECTIONS),
    *((DocumentKind.DELIVERABLE, s) for m in deliverables.months() for s in deliverables.month_sections(m.number)),
    *((DocumentKind.SUMMARY, s) for s in summaries.SUMMARY_SPECS.values()),
]


def test_keys_are_distinct_across_catalogues():
    plan_keys = {s.key for s in plan.BUSINESS_PLAN_SECTIONS}
    kind_keys = {k.key for k in deliverables.section_kinds()}
    summary_keys = set(summaries.SUMMARY_SPECS)
    assert not plan_keys & kind_keys and not plan_keys & summary_keys and not kind_keys & summary_keys


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=lambda v: getattr(v, "key", str(v)))
def test_routing_caching_and_outputs_answer_from_the_spec(kind: DocumentKind, spec: SectionSpec):
    assert catalogue.spec(kind, spec.key) == spec
    assert catalogue.spec_of(spec.key) == spec
    assert catalogue.document_kind(spec.key) is kind
    assert tier_for(spec.key) is spec.tier
    assert policy(kind, spec.key) is spec.cache
    assert output_model(spec.key) is spec.output


def test_a_document_section_carries_its_kinds_facts():
    for kind in deliverables.section_kinds():
        concrete = deliverables.section_spec(deliverables.section_key("m4_customer_experience", kind.key))
        assert (concrete.tier, concrete.cache, concrete.output, concrete.uses_digest) == (
            kind.tier,
            kind.cache,
            kind.output,
            kind.uses_digest,
        )


def test_unknown_keys():
    with pytest.raises(UnknownSection):
        catalogue.spec_of("pricing")
    with pytest.raises(UnknownSection):
        catalogue.spec(DocumentKind.SUMMARY, "market_analysis")
    assert tier_for("pricing") is Tier.STANDARD
    # Only a deliverable key is checked: the others fall back to the default policy.
    assert policy(DocumentKind.BUSINESS_PLAN, "pricing").cacheable
    with pytest.raises(UnknownSection):
        policy(DocumentKind.DELIVERABLE, "m1_brand_architecture__pricing")
