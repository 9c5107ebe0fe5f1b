"""The service-tier decision (tokenopt.service_tiers) and how each tier is priced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenopt import estimate, pricing
from tokenopt.service_tiers import (
    FLEX_CALL_MAX,
    BadDeadline,
    ServiceTier,
    TierAttempt,
    Urgency,
    call_attempts,
    deadline_from,
    document_tier,
    falls_back,
    parse_duration,
)

H = timedelta(hours=1)
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("left", "batch", "tier"),
    [
        (None, True, ServiceTier.STANDARD),  # interactive: no deadline
        (timedelta(minutes=10), True, ServiceTier.STANDARD),
        (timedelta(minutes=30), True, ServiceTier.FLEX),
        (5 * H, True, ServiceTier.FLEX),
        (25 * H, True, ServiceTier.FLEX),  # a day, but no margin for the lines a batch misses
        (26 * H, True, ServiceTier.BATCH),
        (7 * 24 * H, True, ServiceTier.BATCH),
        (7 * 24 * H, False, ServiceTier.FLEX),  # no Batch API (local model, or turned off)
    ],
)
def test_the_cheapest_tier_that_meets_the_deadline(left: timedelta | None, batch: bool, tier: ServiceTier) -> None:
    assert document_tier(left, batch_available=batch) is tier


def test_interactive_and_unsold_models_call_standard_only() -> None:
    standard = [TierAttempt(ServiceTier.STANDARD, 60.0)]
    assert call_attempts(ServiceTier.STANDARD, time_left=5 * H, flex_offered=True, standard_seconds=60) == standard
    assert call_attempts(ServiceTier.FLEX, time_left=5 * H, flex_offered=False, standard_seconds=60) == standard


def test_flex_first_then_standard_with_time_for_both() -> None:
    tries = call_attempts(ServiceTier.FLEX, time_left=5 * H, flex_offered=True, standard_seconds=60)
    assert tries == [
        TierAttempt(ServiceTier.FLEX, FLEX_CALL_MAX.total_seconds()),
        TierAttempt(ServiceTier.STANDARD, 60.0),
    ]
    # A section the Batch API did not answer goes the direct way on flex too.
    assert call_attempts(ServiceTier.BATCH, time_left=5 * H, flex_offered=True, standard_seconds=60)[0].tier is (
        ServiceTier.FLEX
    )


def test_a_close_deadline_shortens_flex_then_skips_it() -> None:
    # 10 minutes left, a standard call may take 2: flex gets 8, so standard can still finish.
    tries = call_attempts(ServiceTier.FLEX, time_left=timedelta(minutes=10), flex_offered=True, standard_seconds=120)
    assert tries[0] == TierAttempt(ServiceTier.FLEX, 480.0)
    # 3 minutes left: a flex try could not leave a standard call its time: standard at once.
    tries = call_attempts(ServiceTier.FLEX, time_left=timedelta(minutes=3), flex_offered=True, standard_seconds=120)
    assert tries == [TierAttempt(ServiceTier.STANDARD, 120.0)]
    # Past the deadline: standard.
    tries = call_attempts(ServiceTier.FLEX, time_left=-H, flex_offered=True, standard_seconds=120)
    assert [t.tier for t in tries] == [ServiceTier.STANDARD]


def test_flex_falls_back_on_refusal_and_timeout_only() -> None:
    assert falls_back("LLMRateLimited") and falls_back("LLMTimeout")
    assert not falls_back("LLMBadRequest") and not falls_back("LLMServerError")


def test_urgency_and_duration_make_a_deadline() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert deadline_from(now) is None
    assert deadline_from(now, urgency=Urgency.NOW) is None
    assert deadline_from(now, urgency=Urgency.TODAY) == now + 24 * H
    assert deadline_from(now, urgency=Urgency.WEEK) == now + 7 * 24 * H
    assert deadline_from(now, by="1d12h") == now + 36 * H
    with pytest.raises(BadDeadline, match="not both"):
        deadline_from(now, by=2 * H, urgency=Urgency.WEEK)


@pytest.mark.parametrize(("text", "expected"), [("90m", 90 * MIN), ("6h", 6 * H), ("3d", 72 * H), (" 1D2h ", 26 * H)])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "h", "6 h", "-1h", "0m", "32d", "6x", "1.5h", "6hours"])
def test_bad_durations_are_refused_in_words(text: str) -> None:
    with pytest.raises(BadDeadline):
        parse_duration(text)


def test_what_the_wire_and_the_response_say() -> None:
    assert [t.wire for t in ServiceTier] == [None, "flex", None]
    assert ServiceTier.served("flex") is ServiceTier.FLEX
    assert ServiceTier.served("default") is ServiceTier.STANDARD
    assert ServiceTier.served(None) is ServiceTier.STANDARD


# -- prices ----------------------------------------------------------------------------------
M = 1_000_000


def test_flex_is_offered_where_genai_prices_has_a_flex_rate() -> None:
    assert pricing.offers_flex("gpt-5-mini") and pricing.offers_flex("o3")
    assert not pricing.offers_flex("gpt-4.1-mini")  # OpenAI does not sell gpt-4.1 on flex
    assert not pricing.offers_flex("no-such-model")


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "gpt-5-nano"])
def test_flex_costs_half_of_standard_like_batch(model: str) -> None:
    standard = pricing.cost(model, prompt_tokens=M, completion_tokens=M)
    flex = pricing.cost(model, prompt_tokens=M, completion_tokens=M, tier=ServiceTier.FLEX)
    batch = pricing.cost(model, prompt_tokens=M, completion_tokens=M, tier=ServiceTier.BATCH)
    assert flex == batch == standard / 2
    assert pricing.cost(model, prompt_tokens=M, batch=True) == pricing.cost(
        model, prompt_tokens=M, tier=ServiceTier.BATCH
    )


def test_flex_served_for_a_model_without_a_flex_rate_is_priced_at_batch_rates() -> None:
    flex = pricing.cost("gpt-4.1-mini", prompt_tokens=M, completion_tokens=M, tier=ServiceTier.FLEX)
    assert flex == pricing.cost("gpt-4.1-mini", prompt_tokens=M, completion_tokens=M, batch=True) == Decimal("1.0")


def test_a_reservation_is_at_the_tier_price() -> None:
    standard = estimate.estimate_call("gpt-5-mini", prompt_tokens=1000, max_completion_tokens=2000)
    flex = estimate.estimate_call("gpt-5-mini", prompt_tokens=1000, max_completion_tokens=2000, tier=ServiceTier.FLEX)
    assert flex.tokens == standard.tokens and flex.cost == standard.cost / 2
