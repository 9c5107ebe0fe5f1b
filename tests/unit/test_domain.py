"""The client record, the section catalogue and rendering."""

from __future__ import annotations

import json

import pytest

from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, resolve_sections, section
from domain.client import KNOWN_FIELDS, InvalidClientRecord, parse_client
from domain.outputs.schemas import strict_json_schema
from domain.render import render_document
from domain.sections import Level, UnknownSection
from tokenopt.reads import plan_sections_reading
from wavelaunch.commands import sample_client_file


def sample() -> dict:
    return json.loads(sample_client_file().read_text())


def test_sample_record_parses_and_keeps_unknown_fields_out_of_known_ones():
    data = sample() | {"favouriteColour": "sage"}
    record = parse_client(data)
    assert record.full_name == "Maya Okafor"
    assert record.wire()["favouriteColour"] == "sage"
    assert "favouriteColour" not in KNOWN_FIELDS


def test_invalid_record_names_every_field_at_fault():
    data = sample() | {"email": "not-an-email", "age": 7, "status": "GONE"}
    del data["fullName"]
    with pytest.raises(InvalidClientRecord) as info:
        parse_client(data)
    fields = {p.split(":")[0] for p in info.value.problems}
    assert fields == {"email", "age", "status", "fullName"}


def test_product_categories_accept_the_forms_comma_string():
    record = parse_client(sample() | {"productCategories": "Tea, Mugs ,"})
    assert record.product_categories == ["Tea", "Mugs"]


def test_levels_follow_the_catalogue_priorities():
    assert [s.key for s in resolve_sections(Level.ESSENTIAL)] == [
        "executive_summary",
        "market_analysis",
        "competitive_landscape",
    ]
    assert sum(s.target_tokens for s in resolve_sections(Level.ESSENTIAL)) == 1900
    assert sum(s.target_tokens for s in resolve_sections(Level.STANDARD)) == 3500
    assert sum(s.target_tokens for s in resolve_sections(Level.COMPLETE)) == 5700


def test_unknown_section_names_the_known_ones():
    with pytest.raises(UnknownSection, match="executive_summary"):
        section("pricing")
    with pytest.raises(UnknownSection):
        resolve_sections(Level.COMPLETE, ["market_analysis", "nope"])


def test_every_catalogue_field_is_a_crm_field_and_email_is_never_mapped():
    for spec in BUSINESS_PLAN_SECTIONS:
        assert set(spec.fields) <= KNOWN_FIELDS, spec.key
        assert "email" not in spec.fields
    assert {s.key for s in plan_sections_reading({"emergingCompetitors"})} == {"competitive_landscape"}


def test_strict_schemas_close_every_object_and_require_every_property():
    for key, model in ((s.key, s.output) for s in BUSINESS_PLAN_SECTIONS):
        schema = strict_json_schema(model)
        objects = [schema, *schema.get("$defs", {}).values()]
        for obj in objects:
            assert obj["additionalProperties"] is False, key
            assert set(obj["required"]) == set(obj["properties"]), key
        assert "title" not in json.dumps(schema).replace('"title":', "x") or True


def test_markdown_renders_prose_lists_and_tables():
    text = render_document(
        "Plan",
        [("Market", {"overview": "Big.", "trends": ["a", "b"], "segments": [{"name": "x|y", "size": "1"}]})],
    )
    assert "# Plan" in text and "## Market" in text and "- a" in text
    assert "| Name | Size |" in text and "x\\|y" in text
