"""The local (llama.cpp, json_object) request shape; OpenAI's strict json_schema stays as it was."""

from __future__ import annotations

import json

from domain.outputs.schemas import output_model, strict_json_schema
from llm.client import LOCAL_MAX_ITEMS, LLMClient, _reencode_control_chars


def _arrays(node: object) -> list[dict]:
    if isinstance(node, dict):
        found = [node] if node.get("type") == "array" else []
        return found + [a for value in node.values() for a in _arrays(value)]
    if isinstance(node, list):
        return [a for item in node for a in _arrays(item)]
    return []


def test_openai_mode_sends_the_schema_untouched() -> None:
    schema = strict_json_schema(output_model("market_analysis"))
    client = LLMClient(api_key="k", structured_output="json_schema")
    sent = client._response_format("market_analysis_v1", schema)
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "market_analysis_v1", "schema": schema, "strict": True},
    }


def test_local_mode_bounds_every_array_and_leaves_the_schema_alone() -> None:
    schema = strict_json_schema(output_model("market_analysis"))
    before = json.dumps(schema)
    client = LLMClient(api_key="k", structured_output="json_object")
    sent = client._response_format("market_analysis_v1", schema)
    assert sent["type"] == "json_object"
    arrays = _arrays(sent["schema"])
    assert arrays and all(a["maxItems"] == LOCAL_MAX_ITEMS for a in arrays)
    assert json.dumps(schema) == before


def test_raw_newlines_in_strings_are_escaped_and_other_text_is_kept() -> None:
    fixed = _reencode_control_chars('{"a": "one\ntwo", "b": ["\t"]}')
    assert json.loads(fixed) == {"a": "one\ntwo", "b": ["\t"]}
    assert _reencode_control_chars('{"a": 1}') == '{"a": 1}'
    assert _reencode_control_chars('{"a": "cut') == '{"a": "cut'
