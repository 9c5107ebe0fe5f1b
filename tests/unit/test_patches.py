"""Revisions as JSON Patches: sizing, applying, refusing, and the stub's answers to them."""

from __future__ import annotations

import json

import pytest

from domain.catalogue.plan import section
from domain.outputs.schemas import SectionPatch, patch_schema_name, strict_json_schema
from stubs.llm_server import PATCH_FILL, answer_body, parse_chat_request
from stubs.llm_server import StubState as _State  # noqa: N814
from tokenopt.counting import count_tokens
from tokenopt.patches import (
    MAX_CHANGED_FIELDS,
    PatchRejected,
    allowance,
    apply_patch,
    build_patch_prompt,
    field_changes,
    replaced_share,
)

CURRENT = {
    "overview": "Glide sells reformer kits to women 25-40 who train at home.",
    "competitors": [{"name": "Peloton", "strengths": "brand", "weaknesses": "price"}],
    "differentiators": ["Small-space design", "Coach videos"],
    "positioning": "The studio reformer for a flat, at a third of the price.",
}
INPUTS = {
    "brandName": "Glide",
    "industryNiche": "Home fitness",
    "differentiation": "Small-space design that folds flat, coach videos filmed in real homes, a third of the price.",
    "uniqueValueProps": "A reformer that fits under a sofa; monthly coaching by certified instructors; resale.",
    "emergingCompetitors": "Peloton and cheap mats.",
    "inspirationBrands": "Tonies for the ritual, Patagonia for the repairs, Oura for the data.",
}


def patch(*ops: dict) -> SectionPatch:
    return SectionPatch.model_validate({"operations": [{"value": "", **o} for o in ops]})


def test_field_changes_name_old_and_new_values():
    new = INPUTS | {"emergingCompetitors": "Peloton, cheap mats and a new app, Flex."}
    (change,) = field_changes(INPUTS, new)
    assert (change.field, change.old, change.new) == (
        "emergingCompetitors",
        "Peloton and cheap mats.",
        "Peloton, cheap mats and a new app, Flex.",
    )
    assert field_changes(INPUTS, INPUTS) == []


def test_allowance_grows_with_the_change_and_stops_at_half_the_section():
    small = field_changes(INPUTS, INPUTS | {"emergingCompetitors": "Peloton."})
    bigger = field_changes(INPUTS, INPUTS | {"emergingCompetitors": "Peloton, Tonal, Hydrow and twenty cheap mats."})
    a, b = allowance(small, INPUTS, 600, "gpt-4.1"), allowance(bigger, INPUTS, 600, "gpt-4.1")
    assert a is not None and b is not None and a < b <= 300
    # A change touching most of what the section reads is a rewrite, not a patch.
    everything = field_changes(INPUTS, {k: v + " Rewritten entirely, at length." for k, v in INPUTS.items()})
    assert allowance(everything[:MAX_CHANGED_FIELDS], INPUTS, 600, "gpt-4.1") is None
    assert allowance(everything, INPUTS, 6000, "gpt-4.1") is None  # more fields than a patch covers
    assert allowance([], INPUTS, 600, "gpt-4.1") is None


def test_a_patch_replaces_only_what_it_names():
    patched = apply_patch(CURRENT, patch({"op": "replace", "path": "/differentiators/1", "value": "Live classes"}))
    assert patched["differentiators"] == ["Small-space design", "Live classes"]
    assert patched["overview"] == CURRENT["overview"] and CURRENT["differentiators"][1] == "Coach videos"
    added = apply_patch(CURRENT, patch({"op": "add", "path": "/differentiators/-", "value": "Resale"}))
    assert added["differentiators"][-1] == "Resale"
    removed = apply_patch(CURRENT, patch({"op": "remove", "path": "/differentiators/0"}))
    assert removed["differentiators"] == ["Coach videos"]


@pytest.mark.parametrize(
    "ops",
    [
        [],
        [{"op": "replace", "path": "/nope", "value": "x"}],
        [{"op": "remove", "path": "/differentiators/9"}],
        [{"op": "replace", "path": "", "value": "everything"}],
    ],
)
def test_a_patch_that_does_not_apply_is_rejected(ops):
    with pytest.raises(PatchRejected):
        apply_patch(CURRENT, patch(*ops))


def test_a_patch_that_rewrites_more_than_half_is_rejected():
    ops = [
        {"op": "replace", "path": "/overview", "value": "A different text altogether for the overview."},
        {"op": "replace", "path": "/positioning", "value": "A different positioning, also rewritten."},
    ]
    assert replaced_share(CURRENT, CURRENT) == 0
    with pytest.raises(PatchRejected, match="replaces"):
        apply_patch(CURRENT, patch(*ops))


def test_the_stub_answers_a_patch_with_operations_that_apply_sized_by_the_request():
    spec = section("competitive_landscape")
    changes = field_changes(INPUTS, INPUTS | {"emergingCompetitors": "Peloton and a new app, Flex."})
    for limit in (120, 240):
        prompt = build_patch_prompt(spec, CURRENT, changes, model="gpt-4.1", limit=limit)
        body = {
            "model": "gpt-4.1",
            "messages": prompt.messages,
            "max_completion_tokens": limit,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": patch_schema_name(),
                    "schema": strict_json_schema(SectionPatch),
                    "strict": True,
                },
            },
        }
        answer = answer_body(parse_chat_request(body), 0, _State())
        content = answer["choices"][0]["message"]["content"]
        assert answer["choices"][0]["finish_reason"] == "stop"
        tokens = count_tokens(content, "gpt-4.1")
        assert limit * PATCH_FILL * 0.7 <= tokens <= limit * PATCH_FILL
        operations = SectionPatch.model_validate(json.loads(content))
        paths = {o.path for o in operations.operations}
        assert paths and all(p.startswith("/") for p in paths)
        # Every operation names a text leaf of the document it was shown.
        for p in paths:
            node = CURRENT
            for part in p.strip("/").split("/"):
                node = node[int(part)] if isinstance(node, list) else node[part]
            assert isinstance(node, str)
