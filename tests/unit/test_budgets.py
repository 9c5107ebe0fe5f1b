"""Pure budget rules: use fraction, thresholds reached, settings parsed, the call estimate, and
the alert webhook's envelope and signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from activities.alerts import webhook_request
from domain import signature
from domain.budgets import (
    Alert,
    BudgetScope,
    BudgetSpec,
    InvalidBudget,
    Period,
    parse_thresholds,
    reached,
    use_fraction,
)
from domain.outputs.schemas import output_model, strict_json_schema
from stubs.llm_server import parse_chat_request
from stubs.llm_server import prompt_tokens as stub_prompt_tokens
from tokenopt import pricing
from tokenopt.estimate import estimate_call, prompt_tokens


def test_use_fraction_is_the_larger_share_of_the_two_limits():
    assert use_fraction(500, 1000, Decimal(1), Decimal(10)) == 0.5
    assert use_fraction(100, 1000, Decimal(9), Decimal(10)) == 0.9
    assert use_fraction(0, 0, Decimal(0), Decimal(10)) == 1.0  # a zero limit is full at once


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.49, []), (0.5, [50]), (0.8, [50, 75]), (0.9, [50, 75, 90]), (1.2, [50, 75, 90, 100])],
)
def test_thresholds_reached(fraction, expected):
    assert reached([50, 75, 90, 100], fraction) == expected


def test_thresholds_are_parsed_and_checked():
    assert parse_thresholds("90, 50,75,50") == [50, 75, 90]
    for bad in ("fifty", "0,50", "50,101", ""):
        with pytest.raises(InvalidBudget):
            parse_thresholds(bad)


def test_a_spec_is_checked_before_it_is_stored():
    assert BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.DAILY, thresholds=[90, 50]).check().thresholds == [50, 90]
    with pytest.raises(InvalidBudget, match="token limit must be 0 or more"):
        BudgetSpec(scope=BudgetScope.GLOBAL, period=Period.DAILY, token_limit=-5).check()
    with pytest.raises(InvalidBudget, match="needs a client id"):
        BudgetSpec(scope=BudgetScope.CLIENT, period=Period.DAILY).check()
    with pytest.raises(InvalidBudget, match="must not have one"):
        BudgetSpec(scope=BudgetScope.GLOBAL, client_id="c1", period=Period.DAILY).check()


def test_the_estimate_is_an_upper_bound_of_what_the_stub_bills():
    schema = strict_json_schema(output_model("market_analysis"))
    messages = [
        {"role": "system", "content": "Write the section."},
        {"role": "user", "content": "Client: Ana, skincare"},
    ]
    body = {
        "model": "gpt-4.1-mini",
        "messages": messages,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}},
    }
    billed = stub_prompt_tokens(parse_chat_request(body))
    assert prompt_tokens(messages, "gpt-4.1-mini", schema) == billed
    est = estimate_call("gpt-4.1-mini", prompt_tokens=billed, max_completion_tokens=1600)
    assert est.tokens == billed + 1600
    assert est.cost == pricing.cost("gpt-4.1-mini", prompt_tokens=billed, completion_tokens=1600)
    # Any answer within max_completion_tokens, with or without cached prompt tokens, costs no more.
    assert (
        pricing.cost("gpt-4.1-mini", prompt_tokens=billed, cached_tokens=billed // 2, completion_tokens=1600)
        <= est.cost
    )
    assert estimate_call("m", prompt_tokens=10, max_completion_tokens=10, free_models=frozenset({"m"})).cost == 0


def test_an_alert_is_posted_in_the_crm_envelope_with_its_signature():
    alert = Alert(id=7, kind="cache_hit_rate", message="low", created_at=datetime(2026, 1, 2, tzinfo=UTC))
    body, headers = webhook_request(alert, "s3cret")
    assert signature.valid(body, headers["X-Webhook-Signature"], "s3cret")
    assert headers["X-Webhook-ID"] == "alert_7" and headers["X-Webhook-Event"] == "alert.cache_hit_rate"
    datetime.fromisoformat(headers["X-Webhook-Timestamp"])
    data = json.loads(body)
    assert data["event"] == "alert.cache_hit_rate" and data["data"]["message"] == "low"
    _, unsigned = webhook_request(alert, None)
    assert "X-Webhook-Signature" not in unsigned
