"""Batch API pieces without a server: the JSONL input, the result lines, the batch price."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from activities.ledger import Baseline, SectionLedger
from activities.writer import SectionWriter
from domain.catalogue.plan import section
from domain.outputs.schemas import output_model, strict_json_schema
from llm.batch_api import BatchLine, build_jsonl, parse_results
from llm.client import LLMClient
from tokenopt import pricing
from tokenopt.routing import ModelRouter

MESSAGES = [{"role": "system", "content": "Write the section."}, {"role": "user", "content": "client: ..."}]


def section_body(local: bool = False) -> dict:
    llm = LLMClient(
        api_key="k", base_url="http://127.0.0.1:1/v1", structured_output="json_object" if local else "json_schema"
    )
    ledger = SectionLedger(
        None,  # type: ignore[arg-type] - building a body writes nothing
        client_id="c1",
        spec=section("market_analysis"),
        baseline=Baseline(0, "gpt-4.1"),
        free_models=frozenset(),
    )
    router = ModelRouter("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano")
    writer = SectionWriter(llm, router, ledger, "c1", None)  # type: ignore[arg-type] - no call is made
    return llm.request_body(**writer.call_kwargs(section("market_analysis"), "gpt-4.1-mini", MESSAGES))


def test_a_line_carries_what_a_direct_call_sends():
    body = section_body()
    spec = section("market_analysis")
    assert body["model"] == "gpt-4.1-mini" and body["messages"] == MESSAGES
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": f"market_analysis_v{spec.schema_version}",
            "schema": strict_json_schema(output_model("market_analysis")),
            "strict": True,
        },
    }
    assert body["max_completion_tokens"] == spec.target_tokens * 2
    assert body["prompt_cache_key"] == "client-c1"

    [line] = build_jsonl([BatchLine("key-1", body)]).decode().splitlines()
    assert json.loads(line) == {"custom_id": "key-1", "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_the_input_file_has_one_line_per_request_and_refuses_duplicate_ids():
    data = build_jsonl([BatchLine("a", {"model": "m"}), BatchLine("b", {"model": "m"})])
    assert [json.loads(x)["custom_id"] for x in data.decode().splitlines()] == ["a", "b"]
    assert data.endswith(b"\n")
    with pytest.raises(ValueError, match="duplicate custom_id 'a'"):
        build_jsonl([BatchLine("a", {}), BatchLine("a", {})])


def test_result_lines_answered_failed_expired_and_junk():
    text = "\n".join(
        [
            json.dumps({"custom_id": "ok", "response": {"status_code": 200, "body": {"id": "x"}}, "error": None}),
            json.dumps(
                {
                    "custom_id": "500",
                    "response": {"status_code": 500, "body": {"error": {"message": "boom", "code": None}}},
                    "error": None,
                }
            ),
            json.dumps({"custom_id": "late", "response": None, "error": {"code": "batch_expired", "message": "late"}}),
            "not json",
            "",
        ]
    )
    ok, failed, expired = parse_results(text)
    assert ok.ok and ok.body == {"id": "x"}
    assert not failed.ok and failed.status_code == 500 and failed.error == "boom" and failed.body is None
    assert not expired.ok and expired.error == "batch_expired: late"


@pytest.mark.parametrize("model", ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"])
def test_batch_price_is_genai_prices_batch_rate_half_the_standard_price(model):
    standard = pricing.cost(model, prompt_tokens=1_000, completion_tokens=800)
    batch = pricing.cost(model, prompt_tokens=1_000, completion_tokens=800, batch=True)
    published = calc_price(
        Usage(input_tokens=1_000, output_tokens=800),
        model_ref=model,
        provider_id="openai",
        price_context={"processing": "batch"},
    ).total_price
    assert batch == Decimal(published) == standard / 2 > 0


def test_batch_cached_tokens_follow_the_published_batch_table():
    # OpenAI's batch table has no cached-input rate; genai-prices keeps the standard one.
    batch = pricing.cost("gpt-4.1", prompt_tokens=1_000_000, cached_tokens=500_000, batch=True)
    assert batch == Decimal("0.5") * 1 + Decimal("0.5") * Decimal("0.5")


def test_a_model_without_a_published_batch_rate_gets_the_documented_half():
    model = "gpt-4o-search-preview"
    price = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id="openai")
    assert not pricing.has_batch_rate(price)
    standard = pricing.cost(model, prompt_tokens=1_000, completion_tokens=800)
    assert (
        pricing.cost(model, prompt_tokens=1_000, completion_tokens=800, batch=True) == standard * pricing.BATCH_DISCOUNT
    )


def test_a_free_model_stays_free_in_a_batch():
    assert (
        pricing.cost("gemma", prompt_tokens=10, completion_tokens=10, free_models=frozenset({"gemma"}), batch=True) == 0
    )
