"""One dependency set per section: every client field changed in turn regenerates exactly the
sections whose prompts carry it.

The oracle is the prompt text itself (does the new value appear in what the model is shown?),
not tokenopt.reads, so a section that reads a field its dependency set misses fails here.
"""

from __future__ import annotations

import json

import pytest

from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.client import KNOWN_FIELDS
from domain.sections import DocumentKind, Tier
from tokenopt.projection import NEVER_SENT
from tokenopt.prompts import build_section_prompt
from tokenopt.reads import PROMPT_VERSION, reads, sections_reading
from tokenopt.techniques import Techniques
from wavelaunch.commands import sample_client_file

RECORD = json.loads(sample_client_file().read_text())
MARKER = "Zanzibar-7Q"  # appears in no sample value
FIELDS = sorted(KNOWN_FIELDS - NEVER_SENT - {"age"})  # age is an int; covered by the full-record test


def _documents() -> list[tuple[DocumentKind, list]]:
    out = [(DocumentKind.BUSINESS_PLAN, list(BUSINESS_PLAN_SECTIONS))]
    out += [(DocumentKind.DELIVERABLE, list(deliverables.month_sections(m.number))) for m in deliverables.months()]
    return out


def _prompts(record: dict, kind: DocumentKind, specs: list, techniques: Techniques = Techniques()) -> dict:
    return {s.key: build_section_prompt(record, s, model="gpt-4.1", kind=kind, techniques=techniques) for s in specs}


def _text(prompt) -> str:
    return "\n".join(m["content"] for m in prompt.messages)


@pytest.mark.parametrize("field", FIELDS)
def test_a_changed_field_regenerates_exactly_the_sections_whose_prompts_carry_it(field):
    changed = RECORD | {field: f"{MARKER} {field}"}
    for kind, specs in _documents():
        before, after = _prompts(RECORD, kind, specs), _prompts(changed, kind, specs)
        carrying = {k for k, p in after.items() if MARKER in _text(p)}
        rekeyed = {k for k in after if after[k].input_hash != before[k].input_hash}
        declared = {s.key for s in sections_reading(kind, specs, [field])}
        assert rekeyed == carrying, (kind, field)
        assert declared == carrying, (kind, field)


def test_brand_and_niche_are_read_by_every_section():
    for field in ("brandName", "industryNiche"):
        for kind, specs in _documents():
            assert {s.key for s in sections_reading(kind, specs, [field])} == {s.key for s in specs}


def test_the_email_and_unmapped_fields_are_read_by_no_section():
    for kind, specs in _documents():
        assert sections_reading(kind, specs, ["email", "someUnmappedExtra"]) == []


def test_with_compression_off_every_section_reads_every_mapped_field():
    off = Techniques.without(["context_compression", "budget_compression"])
    for kind, specs in _documents()[:2]:
        assert {s.key for s in sections_reading(kind, specs, ["personalTurningPoints"], off)} == {s.key for s in specs}


def test_the_tier_and_versions_are_part_of_the_key():
    spec = BUSINESS_PLAN_SECTIONS[0]
    read = reads(DocumentKind.BUSINESS_PLAN, spec)
    assert read.prompt_version == PROMPT_VERSION and read.schema_version == spec.schema_version
    routed = build_section_prompt(RECORD, spec, model="gpt-4.1")
    premium = build_section_prompt(RECORD, spec, model="gpt-4.1", techniques=Techniques.without(["routing"]))
    assert read.tier is Tier.PREMIUM  # the executive summary is routed to premium anyway
    assert routed.input_hash == premium.input_hash
    cheap = BUSINESS_PLAN_SECTIONS[-1]  # team structure: economy when routed
    assert (
        build_section_prompt(RECORD, cheap, model="x").input_hash
        != build_section_prompt(RECORD, cheap, model="x", techniques=Techniques.without(["routing"])).input_hash
    )
