"""Cache keys, the cache policy table and the semantic guard (pure rules, no database)."""

from __future__ import annotations

import json

from domain.cache_policy import policy
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, section
from domain.sections import DocumentKind
from tokenopt.cache_keys import exact_key, normalise_prompt_text
from tokenopt.prompts import build_section_prompt
from tokenopt.semantic import changed_fields, cosine, critical_facts, facts_match, hashing_embedding, inputs_text
from wavelaunch.commands import sample_client_file

RECORD = json.loads(sample_client_file().read_text())


def key_for(record: dict, tenant: str, **overrides) -> str:
    spec = section("market_analysis")
    prompt = build_section_prompt(record, spec, model="gpt-4.1-mini")
    args = dict(
        tenant=tenant,
        document_kind="business_plan",
        section_key=spec.key,
        messages=prompt.messages,
        model="gpt-4.1-mini",
        temperature=None,
        max_tokens=1600,
        schema_version=1,
        prompt_version=3,
    )
    return exact_key(**(args | overrides))


def test_identical_prompts_for_two_clients_never_share_a_key():
    assert key_for(RECORD, "client-a") != key_for(RECORD, "client-b")
    assert key_for(RECORD, "client-a") == key_for(RECORD, "client-a")


def test_key_covers_model_limits_and_versions():
    base = key_for(RECORD, "c")
    for change in (
        {"model": "gpt-4.1"},
        {"max_tokens": 1000},
        {"temperature": 0.2},
        {"schema_version": 2},
        {"prompt_version": 4},
    ):
        assert key_for(RECORD, "c", **change) != base, change


def test_whitespace_folds_but_values_keep_their_articles():
    assert normalise_prompt_text("Write  the\tsection.\n\n") == "Write section."
    assert normalise_prompt_text("brandName: The Ordinary") == "brandName: The Ordinary"
    spaced = RECORD | {"targetAudience": "  Women 25-40   who want to stay strong without high-intensity gyms. "}
    assert key_for(spaced, "c") == key_for(RECORD, "c")
    renamed = RECORD | {"targetAudience": "The women 25-40 who want to stay strong without high-intensity gyms."}
    assert key_for(renamed, "c") != key_for(RECORD, "c")


def test_policy_table_keeps_exact_figures_out_of_the_semantic_tier():
    assert policy(DocumentKind.BUSINESS_PLAN, "market_analysis").semantic
    assert not policy(DocumentKind.BUSINESS_PLAN, "financial_projections").semantic
    assert all(policy(DocumentKind.BUSINESS_PLAN, s.key).cacheable for s in BUSINESS_PLAN_SECTIONS)


def test_guard_rejects_negations_numbers_dates_names_and_prices():
    base = "Launch in May with a price of 29 GBP. We will ship to Portugal."
    assert facts_match(base, base.replace("Launch", "Launch")) and facts_match(base, base + " ")
    assert not facts_match(base, base.replace("We will ship", "We will not ship"))
    assert not facts_match(base, base.replace("29", "39"))
    assert not facts_match(base, base.replace("May", "June"))
    assert not facts_match(base, base.replace("Portugal", "Spain"))
    assert not facts_match("Grow 20% a year.", "Grow 25% a year.")
    assert facts_match("calm and warm brand", "warm and calm brand")
    assert "name:Portugal" in critical_facts(base)


def test_hashing_embedding_ranks_near_duplicates_above_unrelated_text():
    a = hashing_embedding("Women 25-40 who want to stay strong without gyms.")
    b = hashing_embedding("Women 25-40 who want to stay strong without a gym.")
    c = hashing_embedding("Gaming laptops reviewed for students on a budget.")
    assert abs(cosine(a, a) - 1) < 1e-9
    assert cosine(a, b) > 0.8 > cosine(a, c)


def test_changed_fields_is_the_delta():
    assert changed_fields({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {"b": "3", "c": "4"}
    assert inputs_text({"b": "2", "a": "1"}) == "a: 1\nb: 2"
