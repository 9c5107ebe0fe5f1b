"""The batching decision, the batch prompt and schema, and the stub's batch answers."""

from __future__ import annotations

import json

import pytest

from activities.group_call import apportion
from domain.catalogue import deliverables
from domain.catalogue.plan import BUSINESS_PLAN_SECTIONS
from domain.client import parse_client
from domain.outputs.schemas import group_json_schema, group_output_model, group_schema_name, output_model
from domain.sections import DocumentKind, Tier
from stubs.llm_server import ChatRequest, batch_target_tokens, generate_content
from tokenopt.counting import count_tokens
from tokenopt.grouping import Candidate, choose_groups, estimate
from tokenopt.prompts import build_group_prompt, build_section_prompt
from tokenopt.routing import tier_for
from tokenopt.techniques import Technique, Techniques
from wavelaunch.commands import sample_client_file

MODELS = {Tier.PREMIUM: "gpt-4.1", Tier.STANDARD: "gpt-4.1-mini", Tier.ECONOMY: "gpt-4.1-nano"}
RECORD = parse_client(json.loads(sample_client_file().read_text())).wire()
DIGEST = "EARLIER MONTHS\n" + "\n".join(f"m1 decision {i}: keep the weekly live class format" for i in range(12))


def plan_candidates(techniques: Techniques = Techniques(), record: dict = RECORD) -> list[Candidate]:
    out = []
    for spec in BUSINESS_PLAN_SECTIONS:
        tier = tier_for(spec.key)
        prompt = build_section_prompt(record, spec, model=MODELS[tier], techniques=techniques)
        out.append(Candidate(spec, tier, prompt))
    return out


def month_candidates(n: int, context: str = DIGEST) -> list[Candidate]:
    out = []
    for spec in deliverables.month_sections(n):
        if spec.key in deliverables.SHARED_KINDS:
            continue
        tier = tier_for(spec.key)
        reads = context if deliverables.traits(deliverables.kind_of(spec.key)).uses_digest else ""
        prompt = build_section_prompt(RECORD, spec, model=MODELS[tier], context=reads, kind=DocumentKind.DELIVERABLE)
        out.append(Candidate(spec, tier, prompt, reads))
    return out


def choose(candidates, kind=DocumentKind.BUSINESS_PLAN, techniques=Techniques(), **kw):
    return choose_groups(candidates, RECORD, kind=kind, techniques=techniques, model_for=MODELS.__getitem__, **kw)


def test_a_complete_plan_batches_its_small_low_priority_economy_sections():
    batches = choose(plan_candidates())
    assert [b.keys for b in batches] == [("operations_plan", "team_structure")]
    # financial_projections is low priority too, but large and on the premium tier.
    assert batches[0].saved_tokens > 0
    assert batches[0].grouped_tokens < batches[0].separate_tokens


def test_batches_only_when_the_estimate_saves_the_margin():
    (batch,) = choose(plan_candidates())
    share = batch.saved_tokens / batch.separate_tokens
    assert choose(plan_candidates(), min_saving=share) != []
    assert choose(plan_candidates(), min_saving=share + 0.001) == []


def test_high_priority_or_large_sections_are_never_candidates():
    keys = {k for b in choose(plan_candidates(), min_saving=-1.0) for k in b.keys}
    assert keys == {"operations_plan", "team_structure"}


def test_the_combined_completion_budget_respects_the_cap():
    # operations_plan + team_structure ask for 2 * (600 + 400) completion tokens.
    assert choose(plan_candidates(), max_completion_tokens=2000) != []
    assert choose(plan_candidates(), max_completion_tokens=1999) == []
    # A month's five Templates/Tools sections (400 each) pack two and two under a 1,600 cap.
    small = choose(month_candidates(2), kind=DocumentKind.DELIVERABLE, max_completion_tokens=1600)
    assert all(len(b.keys) == 2 for b in small) and len(small) == 4


def test_deliverable_batches_group_by_tier_and_context():
    batches = choose(month_candidates(2), kind=DocumentKind.DELIVERABLE)
    kinds = [{deliverables.kind_of(k) for k in b.keys} for b in batches]
    # Templates/Tools (no digest) and KPIs (reads the digest) never share a call.
    assert kinds == [{"templates_tools"}, {"kpis"}]
    assert all(len(b.keys) == 5 for b in batches)
    # The digest is sent once instead of five times: the KPI batch saves most.
    assert batches[1].saved_tokens > batches[0].saved_tokens > 0


def test_members_on_different_tiers_never_share_a_call():
    candidates = plan_candidates()
    moved = [Candidate(c.spec, Tier.STANDARD, c.prompt) if c.spec.key == "team_structure" else c for c in candidates]
    assert choose(moved, min_saving=-1.0) == []


def test_the_technique_switch_and_structured_prompts_turn_batching_off():
    assert choose(plan_candidates(), techniques=Techniques.without([Technique.BATCHING.value])) == []
    off = Techniques.without([Technique.STRUCTURED_PROMPTS.value])
    assert choose(plan_candidates(off), techniques=off) == []


def test_a_compressed_prompt_is_not_batched():
    long = dict(RECORD, professionalMilestones="Ran a studio for ten years. " * 120)
    candidates = plan_candidates(record=long)
    team = next(c for c in candidates if c.spec.key == "team_structure")
    assert team.prompt.compression_steps
    assert choose(candidates, min_saving=-1.0) == []


def test_the_batch_prompt_carries_the_shared_parts_once_and_one_request_per_member():
    specs = [c.spec for c in plan_candidates() if c.spec.key in ("operations_plan", "team_structure")]
    prompt = build_group_prompt(RECORD, specs, model="gpt-4.1-nano")
    user = prompt.messages[1]["content"]
    assert user.count("CLIENT\n") == 1 and user.count("scalingGoals:") == 1
    assert "KEY operations_plan\n" in user and "KEY team_structure\n" in user
    assert "Write 2 business-plan sections" in prompt.messages[0]["content"]
    assert "email" not in json.dumps(prompt.messages).lower()


def test_the_batch_schema_is_strict_with_one_required_property_per_member():
    keys = ["m1_brand_architecture__kpis", "m1_visual_identity__kpis", "operations_plan"]
    schema = group_json_schema(keys)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == keys
    # Two members with one output model share it by reference; a single one is written in place.
    assert schema["properties"][keys[0]] == schema["properties"][keys[1]] == {"$ref": "#/$defs/Kpis"}
    assert schema["properties"]["operations_plan"]["type"] == "object"
    assert group_schema_name() == "section_batch_v1"
    assert group_output_model(tuple(keys)).model_fields.keys() == set(keys)


def test_the_estimate_counts_the_schema_and_the_answers_keys():
    members = [c for c in plan_candidates() if c.spec.key in ("operations_plan", "team_structure")]
    batch = estimate(members, RECORD, kind=DocumentKind.BUSINESS_PLAN, techniques=Techniques(), model="gpt-4.1-nano")
    own = sum(m.prompt.estimated_tokens for m in members)
    targets = sum(m.spec.target_tokens for m in members)
    assert batch.separate_tokens > own + targets  # the schemas are billed too


@pytest.mark.parametrize(("total", "weights"), [(1000, [3, 1]), (7, [1, 1, 1]), (0, [5, 5]), (5, [0, 0])])
def test_apportion_adds_up_exactly(total, weights):
    parts = apportion(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)


def test_the_stub_answers_a_batch_with_each_members_target():
    keys = ("operations_plan", "team_structure")
    chat = ChatRequest(
        model="gpt-4.1-nano",
        messages=(("user", "x"),),
        response_type="json_schema",
        schema_name=group_schema_name(),
        schema=group_json_schema(keys),
        max_tokens=None,
        prompt_cache_key=None,
    )
    assert chat.batch_members == keys
    content = generate_content(chat, batch_target_tokens(keys))
    root = json.loads(content)
    for key in keys:
        output_model(key).model_validate(root[key])
        assert count_tokens(json.dumps(root[key], ensure_ascii=False), chat.model) == pytest.approx(
            {"operations_plan": 600, "team_structure": 400}[key], abs=2
        )
    assert count_tokens(content, chat.model) <= 1000 + 12


def test_a_fault_naming_a_member_matches_its_batch_and_one_naming_the_batch_matches_only_batches():
    from stubs.llm_server import StubState, parse_fault_rule

    state = StubState()
    state.add_faults(
        [
            parse_fault_rule({"kind": "invalid_json", "match": {"section": "team_structure"}}),
            parse_fault_rule({"kind": "invalid_json", "match": {"section": "section_batch"}}),
        ]
    )
    assert state.take_faults("m", "operations_plan") == (None, None)
    _, first = state.take_faults("m", "section_batch", ("operations_plan", "team_structure"))
    assert first is not None and first.section == "team_structure"
    _, second = state.take_faults("m", "section_batch", ("operations_plan",))
    assert second is not None and second.section == "section_batch"
    assert state.faults() == []
