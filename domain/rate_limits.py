"""Provider rate limits per model (tokens and requests per minute, for the whole account) and
the defaults: OpenAI's usage tier 1 for OpenAI's own API; none for any other endpoint, whose
limits only its operator knows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The provider counts per minute (WINDOW_SECONDS) from when a request reaches it; a place is
# taken a little before (the reservation, then the HTTP request: a fresh connection took 0.7 s in
# the many-workers test), so each place is held this much longer than the provider counts it.
WINDOW_SECONDS = 60.0
SEND_MARGIN_SECONDS = 1.5
HELD_SECONDS = WINDOW_SECONDS + SEND_MARGIN_SECONDS


class ModelLimit(BaseModel):
    """One model's limits; None: that dimension is unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_minute: int | None = Field(None, gt=0)
    requests_per_minute: int | None = Field(None, gt=0)

    @property
    def unlimited(self) -> bool:
        return self.tokens_per_minute is None and self.requests_per_minute is None


# OpenAI usage tier 1 (a new paid account), per model; a model not listed has no limit held here.
OPENAI_TIER1: dict[str, ModelLimit] = {
    "gpt-4.1": ModelLimit(tokens_per_minute=30_000, requests_per_minute=500),
    "gpt-4.1-mini": ModelLimit(tokens_per_minute=200_000, requests_per_minute=500),
    "gpt-4.1-nano": ModelLimit(tokens_per_minute=200_000, requests_per_minute=500),
    "gpt-5": ModelLimit(tokens_per_minute=30_000, requests_per_minute=500),
    "gpt-5-mini": ModelLimit(tokens_per_minute=200_000, requests_per_minute=500),
    "gpt-5-nano": ModelLimit(tokens_per_minute=200_000, requests_per_minute=500),
}


def default_limits(base_url: str | None) -> dict[str, ModelLimit]:
    """Tier 1 for OpenAI's API (no base URL, or api.openai.com); nothing for other endpoints."""
    if base_url is None or "api.openai.com" in base_url:
        return dict(OPENAI_TIER1)
    return {}


def wait_seconds(window: list[tuple[float, int]], tokens: int, limit: ModelLimit) -> float:
    """How long until a call holding ``tokens`` fits ``limit``, given the calls in the window as
    (age in seconds, tokens held), oldest first; 0: it fits now. A call larger than the whole
    per-minute token limit is counted as the limit (it goes alone rather than never)."""
    waits = [0.0]
    if limit.tokens_per_minute is not None:
        need = min(tokens, limit.tokens_per_minute)
        held = sum(t for _, t in window)
        for age, held_by_row in window:
            if held + need <= limit.tokens_per_minute:
                break
            held -= held_by_row
            waits.append(HELD_SECONDS - age)
    if limit.requests_per_minute is not None:
        expire = len(window) + 1 - limit.requests_per_minute  # rows that must leave the window first
        if expire > 0:
            waits.append(HELD_SECONDS - window[expire - 1][0])
    return max(0.0, max(waits))
