"""The rate-limit window's arithmetic and the defaults per endpoint."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.rate_limits import OPENAI_TIER1, ModelLimit, default_limits, wait_seconds
from domain.rate_limits import SEND_MARGIN_SECONDS as M


def test_a_call_that_fits_waits_nothing() -> None:
    assert wait_seconds([(10.0, 1_000)], 2_000, ModelLimit(tokens_per_minute=3_000)) == 0


def test_the_wait_is_until_enough_of_the_oldest_calls_leave_the_window() -> None:
    window = [(50.0, 1_000), (30.0, 1_000), (5.0, 1_000)]
    # 3,000 held of 3,500: a 1,500-token call needs the oldest to leave (in 10 s); 2,500 needs two.
    assert wait_seconds(window, 1_500, ModelLimit(tokens_per_minute=3_500)) == pytest.approx(10 + M)
    assert wait_seconds(window, 2_500, ModelLimit(tokens_per_minute=3_500)) == pytest.approx(30 + M)
    # Three requests held of three: one must leave.
    assert wait_seconds(window, 1, ModelLimit(requests_per_minute=3)) == pytest.approx(10 + M)
    assert wait_seconds(window, 1, ModelLimit(requests_per_minute=4)) == 0
    # Both limits: the longer wait.
    assert wait_seconds(window, 2_500, ModelLimit(tokens_per_minute=3_500, requests_per_minute=3)) == pytest.approx(
        30 + M
    )


def test_defaults_are_openai_tier_1_for_openai_only_and_limits_are_checked() -> None:
    assert default_limits(None) == OPENAI_TIER1 == default_limits("https://api.openai.com/v1")
    assert default_limits("http://127.0.0.1:8099/v1") == {}
    assert OPENAI_TIER1["gpt-4.1"] == ModelLimit(tokens_per_minute=30_000, requests_per_minute=500)
    assert ModelLimit().unlimited
    with pytest.raises(ValidationError):
        ModelLimit(tokens_per_minute=0)
    with pytest.raises(ValidationError):
        ModelLimit.model_validate({"tokens_per_minute": 1, "rpm": 2})
