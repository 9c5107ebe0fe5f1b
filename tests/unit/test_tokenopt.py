"""Pure token economics: projection, prompts, budgets, routing, prices, naive counterfactual."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS, resolve_sections, section
from domain.client import PERSONAL_FIELDS
from domain.sections import Level, Tier
from tokenopt import budget, naive, pricing
from tokenopt.budget import BudgetExceeded
from tokenopt.projection import project, truncate_sentences
from tokenopt.prompts import build_section_prompt
from tokenopt.reads import ALL_FIELDS
from tokenopt.routing import ModelRouter, tier_for
from tokenopt.techniques import Techniques
from wavelaunch.commands import sample_client_file

RECORD = json.loads(sample_client_file().read_text())
ALL_ON = Techniques()


def prompts(record=RECORD, techniques=ALL_ON):
    return {
        s.key: build_section_prompt(record, s, model="gpt-4.1", techniques=techniques) for s in BUSINESS_PLAN_SECTIONS
    }


@pytest.mark.parametrize("techniques", [ALL_ON, Techniques.without(["context_compression", "structured_prompts"])])
def test_email_never_reaches_a_prompt(techniques):
    for built in prompts(techniques=techniques).values():
        text = json.dumps(built.messages)
        assert RECORD["email"] not in text and "example.com" not in text


def test_handles_only_in_sections_that_map_them():
    for key, built in prompts().items():
        has_handle = RECORD["instagramHandle"] in json.dumps(built.messages)
        assert has_handle == ("instagramHandle" in section(key).fields), key


def test_sensitive_field_is_not_sent_by_any_business_plan_section():
    for built in prompts().values():
        assert "running injury" not in json.dumps(built.messages)


def test_stable_prefix_is_byte_identical_across_a_clients_sections():
    built = prompts()
    prefixes = {b.stable_prefix for b in built.values()}
    assert len(prefixes) == 1
    # ... and each full prompt starts with it.
    prefix = prefixes.pop()
    for b in built.values():
        assert (b.messages[0]["content"] + "\n" + b.messages[1]["content"]).startswith(prefix)
    # With the layout switched off, the variable task leads and the prefixes diverge.
    off = prompts(techniques=Techniques.without(["prefix_layout"]))
    assert len({b.messages[0]["content"] for b in off.values()}) == len(off)


def test_context_compression_sends_far_fewer_tokens_than_the_full_record():
    on, off = prompts(), prompts(techniques=Techniques.without(["context_compression", "budget_compression"]))
    for key in on:
        assert on[key].estimated_tokens < off[key].estimated_tokens, key
    assert sum(b.estimated_tokens for b in on.values()) < 0.7 * sum(b.estimated_tokens for b in off.values())


def test_input_hash_changes_only_for_sections_reading_the_changed_field():
    before = prompts()
    after = prompts(RECORD | {"emergingCompetitors": "A brand-new rival app."})
    changed = {k for k in before if before[k].input_hash != after[k].input_hash}
    assert changed == {"competitive_landscape"}
    # The email is not an input, so changing it changes no section.
    same = prompts(RECORD | {"email": "other@example.org"})
    assert all(same[k].input_hash == before[k].input_hash for k in before)


def test_budget_compression_fires_in_order_and_records_its_steps():
    long_text = " ".join(f"Sentence number {i} about the market and the audience." for i in range(60))
    # market_analysis reads the audience's profile but does not need it (domain.needs): cut it.
    record = RECORD | {"demographicProfile": long_text, "audienceMaritalStatus": long_text + " Married."}
    spec = section("market_analysis")
    built = build_section_prompt(record, spec, model="gpt-4.1")
    assert built.compression_steps[0] == "summarise_long_fields"
    assert "drop_examples" not in built.compression_steps  # there were none to drop
    assert built.estimated_tokens <= budget.hard_limit(spec)
    assert "Sentence number 59" not in built.messages[1]["content"]
    uncompressed = build_section_prompt(
        record, spec, model="gpt-4.1", techniques=Techniques.without(["budget_compression"])
    )
    assert uncompressed.compression_steps == () and uncompressed.estimated_tokens > built.estimated_tokens
    assert uncompressed.estimated_tokens > budget.compress_threshold(spec)


def test_budget_compression_keeps_needed_fields_whole_and_drops_repeated_sentences():
    sentences = [f"Pain point {i} costs the audience {i * 3} hours a week." for i in range(12)]
    long_text = " ".join(sentences * 3)  # each sentence three times
    record = RECORD | {"keyPainPoints": long_text, "demographicProfile": long_text}
    spec = section("market_analysis")  # needs keyPainPoints, not demographicProfile
    built = build_section_prompt(record, spec, model="gpt-4.1")
    assert "summarise_long_fields" in built.compression_steps
    user = built.messages[1]["content"]
    assert f"keyPainPoints: {' '.join(sentences)}\n" in user  # whole, each sentence once
    assert user.count("Pain point 11 costs") == 1


def test_prompt_still_over_budget_fails_before_any_call():
    # Every mapped field long and distinct: summarised to 240 characters each, still far too many.
    # (Unmapped extra fields never reach a prompt, compression or not.)
    long_text = [f for f in ALL_FIELDS if f not in PERSONAL_FIELDS and f not in ("age", "country", "preferredFont")]
    record = RECORD | {f: f"Note {i}: " + "detail " * 200 for i, f in enumerate(long_text)}
    with pytest.raises(BudgetExceeded, match="team_structure"):
        build_section_prompt(
            record,
            section("team_structure"),
            model="gpt-4.1",
            techniques=Techniques.without(["context_compression"]),
        )


def test_repeated_values_become_references():
    record = RECORD | {"scalingGoals": "Same words.", "longTermVision": "Same words."}
    spec = section("team_structure")
    # The whole record is far over this small section's threshold, so every step runs.
    built = build_section_prompt(record, spec, model="gpt-4.1", techniques=Techniques.without(["context_compression"]))
    assert "reference_repeats" in built.compression_steps
    # Fields are sent in a fixed order (tokenopt.reads), so the first of the two is longTermVision.
    assert "scalingGoals: (same as longTermVision)" in built.messages[1]["content"]


def test_truncation_cuts_at_sentence_boundaries():
    text = "One. Two two. Three three three. Four."
    assert truncate_sentences(text, 20) == "One. Two two."
    assert truncate_sentences("short", 20) == "short"


def test_projection_drops_empty_and_normalises():
    assert project(
        {"a": "  x \n y ", "b": "", "c": None, "d": ["p", "q"], "email": "e@x"}, ["a", "b", "c", "d", "email"]
    ) == {"a": "x y", "d": "p, q"}


def test_routing_table_tiers_escalation_and_override():
    router = ModelRouter(premium="gpt-4.1", standard="gpt-4.1-mini", economy="gpt-4.1-nano")
    assert router.model_for(tier_for("executive_summary")) == "gpt-4.1"
    assert router.model_for(tier_for("team_structure")) == "gpt-4.1-nano"
    assert Tier.ECONOMY.escalated() is Tier.STANDARD and Tier.PREMIUM.escalated() is None
    single = ModelRouter(premium="a", standard="b", economy="c", override="local")
    assert single.models() == {"local"}


def test_prices_come_from_the_price_library_and_unknown_models_fail():
    full = pricing.cost("gpt-4.1", prompt_tokens=1_000_000, completion_tokens=0)
    cached = pricing.cost("gpt-4.1", prompt_tokens=1_000_000, cached_tokens=1_000_000)
    assert full == Decimal("2") and cached < full / 2
    assert pricing.cost("gpt-4.1-nano", prompt_tokens=1000, completion_tokens=1000) < pricing.cost(
        "gpt-4.1", prompt_tokens=1000, completion_tokens=1000
    )
    with pytest.raises(pricing.UnknownModelPrice):
        pricing.cost("my-local-model", prompt_tokens=1)
    assert pricing.cost("my-local-model", prompt_tokens=1, free_models=frozenset({"my-local-model"})) == 0
    with pytest.raises(pricing.UnknownModelPrice, match="gpt-9-imaginary"):
        pricing.check_priced({"gpt-4.1", "gpt-9-imaginary"}, set())


def test_naive_prompt_is_the_seeds_persona_record_and_request():
    specs = resolve_sections(Level.COMPLETE)
    messages = naive.naive_messages(RECORD, specs)
    text = json.dumps(messages)
    assert messages[0]["content"] == naive.PERSONA
    assert RECORD["differentiation"] in text and "Executive Summary" in text
    assert RECORD["email"] not in text
    shares = [naive.section_share(s, specs) for s in specs]
    assert abs(sum(shares) - 1) < 1e-9
